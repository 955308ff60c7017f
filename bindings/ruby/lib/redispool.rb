# frozen_string_literal: true

# RedisPool: Ruby bindings for libredispool, a Redis connection pool with
# go-redis pool semantics, through the ffi gem. See README.md next to lib/.
#
# The native library: $REDISPOOL_LIB (a path to libredispool.so) when set,
# else the installed one, found by its SONAME libredispool.so.0 (then by
# libredispool.so) through the dynamic loader.
require "ffi"

require_relative "redispool/version"
require_relative "redispool/native"
require_relative "redispool/errors"
require_relative "redispool/cancel"
require_relative "redispool/conn"
require_relative "redispool/give_back"
require_relative "redispool/pool"
require_relative "redispool/cluster"
require_relative "redispool/conversations"

module RedisPool
  # The version of the loaded C library, e.g. "0.1.0".
  def self.library_version
    Native.pool_version
  end
end
