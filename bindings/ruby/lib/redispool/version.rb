# frozen_string_literal: true

module RedisPool
  # The version of these bindings and of their gem: the C library's version, from
  # Cargo.toml (redispool.gemspec refuses to build when the two differ).
  VERSION = "0.1.0"
end
