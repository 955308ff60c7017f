# frozen_string_literal: true

module RedisPool
  # A cancellation token (pool_cancel_t). Pass it to Pool#get / #with as `cancel:`;
  # any thread may #fire it, and every get waiting with it raises CanceledError
  # promptly (so do later gets: a token stays fired, use a new one per request).
  # This is how to stop a thread blocked in Pool#get: Thread#kill, Thread#raise
  # and Timeout.timeout only act after the native call returns.
  #
  # The native token is freed by the garbage collector (FFI::AutoPointer with a
  # release method); a get using it keeps it referenced until it returns.
  class Cancel
    # Called by FFI::AutoPointer at GC time; pool_cancel_free never blocks.
    def self.release(ptr)
      Native.pool_cancel_free(ptr)
    end

    def initialize
      ptr = Native.pool_cancel_new
      raise NoMemoryError, "pool_cancel_new failed" if ptr.null?

      @ptr = FFI::AutoPointer.new(ptr, self.class.method(:release))
      @fired = false
    end

    # Fires the token. Any thread; never blocks for long. Returns self.
    def fire
      @fired = true
      Native.pool_cancel_fire(@ptr)
      self
    end

    # Whether #fire was called on this object.
    def fired?
      @fired
    end

    # The native pointer, for FFI calls.
    def to_ptr
      @ptr
    end
  end
end
