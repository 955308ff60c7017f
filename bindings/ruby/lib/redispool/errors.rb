# frozen_string_literal: true

require "timeout"

module RedisPool
  # Base class of every error this library raises but PoolTimeoutError (a
  # ::Timeout::Error, see there), which `rescue RedisPool::Error` catches too.
  # #code is the C status (RedisPool::Native::ERR_*), nil for CommandError (a
  # Redis error reply).
  class Error < StandardError
    attr_reader :code

    def initialize(message = nil, code = nil)
      super(message)
      @code = code
    end

    # `rescue RedisPool::Error` (and `when RedisPool::Error`) also matches a
    # PoolTimeoutError, which cannot inherit from this class. Ruby's own
    # SystemCallError.=== widens its match the same way.
    def self.===(other)
      super || (equal?(Error) && other.is_a?(PoolTimeoutError))
    end
  end

  # POOL_ERR_TIMEOUT: no conn within the timeout ("redis: connection pool timeout ...").
  # A ::Timeout::Error, as connection_pool's ConnectionPool::TimeoutError, so code
  # written for connection_pool (`rescue Timeout::Error`) keeps working; and
  # `rescue RedisPool::Error` catches it too (RedisPool::Error.===), though it is
  # not a RedisPool::Error subclass (is_a?(RedisPool::Error) is false).
  class PoolTimeoutError < ::Timeout::Error
    attr_reader :code
    # From Conn#wait_replicas: how many replicas had the writes when the time ran
    # out (nil for a get that timed out).
    attr_accessor :acked

    def initialize(message = nil, code = Native::ERR_TIMEOUT)
      super(message)
      @code = code
    end
  end

  # POOL_ERR_CLOSED: the pool was closed ("redis: client is closed").
  class ClosedError < Error; end
  # POOL_ERR_EXHAUSTED: max_active_conns reached ("redis: connection pool exhausted").
  class PoolExhaustedError < Error; end
  # POOL_ERR_DIAL: dialing failed; the message names the address and the OS error.
  class DialError < Error; end
  # POOL_ERR_INVALID_ARG: a bad URL or option, a foreign conn, a double put/remove,
  # a conn used after it was given back.
  class InvalidArgumentError < Error; end
  # POOL_ERR_WOULD_BLOCK: try_get(exception: true) found no idle conn.
  class WouldBlockError < Error; end
  # POOL_ERR_CANCELED: the RedisPool::Cancel token passed to get fired.
  class CanceledError < Error; end
  # POOL_ERR_BAD_CONN: a command on a conn an earlier command failed on.
  class BadConnError < Error; end
  # POOL_ERR_HANDSHAKE: Redis refused AUTH / SELECT / HELLO / CLIENT SETNAME on a new conn.
  class HandshakeError < Error; end
  # POOL_ERR_IO: a command failed mid-way (timeout, EOF, OS error); the conn is bad.
  # Not ::IOError: inside `module RedisPool` the name means this class.
  class IOError < Error; end
  # POOL_ERR_PROTOCOL: malformed RESP from the server; the conn is bad.
  class ProtocolError < Error; end
  # POOL_ERR_INTERNAL: a bug inside the library; the pool involved is closed.
  class InternalError < Error; end
  # POOL_ERR_CLUSTER: a Redis Cluster cannot serve the request (no node could give
  # the slot map, or no master serves the slot): RedisPool::Cluster#get and the like.
  class ClusterError < Error; end
  # POOL_ERR_TLS: the TLS handshake of a new conn failed (the server's certificate
  # refused: unknown CA, wrong host name, expired; the server refused ours; not a
  # TLS port). The message names the reason.
  class TLSError < Error; end

  # A Redis error reply ("WRONGTYPE ...", "ERR ..."). The command itself went
  # through and the conn stays good. Conn#call raises it for a top-level error
  # reply; inside an aggregate reply (e.g. EXEC's array) it is returned as a value.
  class CommandError < Error
    # The error's first word, e.g. "WRONGTYPE", "ERR", "NOSCRIPT".
    def kind
      message.split(" ", 2).first
    end
  end

  ERRORS_BY_CODE = {
    Native::ERR_CLOSED => ClosedError,
    Native::ERR_EXHAUSTED => PoolExhaustedError,
    Native::ERR_TIMEOUT => PoolTimeoutError,
    Native::ERR_DIAL => DialError,
    Native::ERR_INVALID_ARG => InvalidArgumentError,
    Native::ERR_WOULD_BLOCK => WouldBlockError,
    Native::ERR_CANCELED => CanceledError,
    Native::ERR_BAD_CONN => BadConnError,
    Native::ERR_HANDSHAKE => HandshakeError,
    Native::ERR_IO => IOError,
    Native::ERR_PROTOCOL => ProtocolError,
    Native::ERR_INTERNAL => InternalError,
    Native::ERR_CLUSTER => ClusterError,
    Native::ERR_TLS => TLSError,
  }.freeze
  private_constant :ERRORS_BY_CODE

  # The exception class for each POOL_ERR_* status (the tests check that every
  # status but POOL_OK has one).
  def self.error_classes
    ERRORS_BY_CODE
  end

  # The exception for C status `code`, with the message from a pool_error_t when the
  # call filled one, else the library's description of the status.
  def self.error_for(code, err = nil)
    message = err && err[:code] == code ? err.message : nil
    message = Native.pool_status_str(code) if message.nil? || message.empty?
    ERRORS_BY_CODE.fetch(code, Error).new(message, code)
  end
end
