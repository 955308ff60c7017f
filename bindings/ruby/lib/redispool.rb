# frozen_string_literal: true

# RedisPool: Ruby bindings for libredispool, a Redis connection pool with
# go-redis pool semantics, through the ffi gem. See README.md next to lib/.
#
# The native library: $REDISPOOL_LIB (a path to libredispool.so) when set,
# else an installed libredispool.so / libredispool.so.0.
require "ffi"

require_relative "redispool/version"
require_relative "redispool/native"
require_relative "redispool/errors"
require_relative "redispool/cancel"
require_relative "redispool/conn"
require_relative "redispool/pool"

module RedisPool
  # The version of the loaded C library, e.g. "0.1.0".
  def self.library_version
    Native.pool_version
  end
end
