# frozen_string_literal: true

module RedisPool
  # The version of these bindings.
  VERSION = "0.1.0"
end
