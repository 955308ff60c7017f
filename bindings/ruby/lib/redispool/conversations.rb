# frozen_string_literal: true

module RedisPool
  module Native
    # pool_message_t (from pool_subscriber_receive).
    class Message < FFI::Struct
      layout :kind, :int32,
             :channel, :pointer,
             :channel_len, :size_t,
             :pattern, :pointer,
             :pattern_len, :size_t,
             :payload, :pointer,
             :payload_len, :size_t,
             :count, :int64,
             :reply, :pointer
    end

    # Message kinds (POOL_MSG_*), checked against the header.
    MESSAGE_KINDS = {
      1 => :message, 2 => :pmessage, 3 => :smessage, 4 => :subscribe, 5 => :psubscribe,
      6 => :ssubscribe, 7 => :unsubscribe, 8 => :punsubscribe, 9 => :sunsubscribe,
      10 => :pong, 11 => :resubscribed, 12 => :push, 13 => :error
    }.freeze

    attach_function :pool_message_free, [:pointer], :void
    attach_function :pool_subscriber_fd, [:pointer], :int
    attach_function :pool_subscriber_resubscribes, [:pointer], :uint64
    attach_function :pool_subscriber_free, [:pointer], :void
    # Write and read on the socket: the GVL is released.
    attach_function :pool_conn_pipeline,
                    [:pointer, :size_t, :pointer, :pointer, :pointer, :int64, :pointer, :pointer, :pointer],
                    :int32, blocking: true
    attach_function :pool_subscriber_new, [:pointer, :pointer, :pointer], :int32, blocking: true
    %i[pool_subscriber_subscribe pool_subscriber_psubscribe pool_subscriber_ssubscribe
       pool_subscriber_unsubscribe pool_subscriber_punsubscribe pool_subscriber_sunsubscribe].each do |f|
      attach_function f, [:pointer, :size_t, :pointer, :pointer, :pointer], :int32, blocking: true
    end
    attach_function :pool_subscriber_receive, [:pointer, :int64, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_subscriber_ping, [:pointer, :int64, :pointer], :int32, blocking: true
  end

  # EXEC answered nil: a key WATCHed on the conn changed and the transaction was not
  # run (redis-rb returns nil; go-redis's TxFailedErr). The conn stays good.
  class TransactionAborted < StandardError; end

  # An array of byte strings as C argv / lengths arrays (kept alive by the caller).
  module Args
    def self.pack(strs)
      n = strs.size
      argv = FFI::MemoryPointer.new(:pointer, [n, 1].max)
      lens = FFI::MemoryPointer.new(:size_t, [n, 1].max)
      buf = FFI::MemoryPointer.new(:char, [strs.sum(&:bytesize), 1].max)
      offset = 0
      size_t = FFI.type_size(:size_t)
      strs.each_with_index do |s, i|
        buf.put_bytes(offset, s) unless s.empty?
        argv.put_pointer(i * FFI::Pointer.size, buf + offset)
        lens.put(:size_t, i * size_t, s.bytesize)
        offset += s.bytesize
      end
      [argv, lens, buf]
    end
  end

  class Conn
    # Sends the commands (each an Array of arguments) in one write and returns their
    # replies in order (pool_conn_pipeline; the GVL is released). An error reply is a
    # CommandError object in its place; the replies after it are read as usual. An
    # I/O or protocol failure raises IOError / ProtocolError and marks the conn bad.
    # timeout: seconds for reading all the replies (nil: the pool's read timeout;
    # 0: none).
    def pipeline(*cmds, timeout: nil)
      cmds = cmds.map { |c| Array(c).flatten }
      raise ArgumentError, "a pipeline needs at least one command" if cmds.empty?
      raise ArgumentError, "an empty command in the pipeline" if cmds.any?(&:empty?)

      n = cmds.size
      keep = cmds.map { |c| Args.pack(c.map { |a| self.class.arg_bytes(a) }) }
      argcs = FFI::MemoryPointer.new(:int, n)
      argvs = FFI::MemoryPointer.new(:pointer, n)
      lens = FFI::MemoryPointer.new(:pointer, n)
      cmds.each_with_index do |c, i|
        argcs.put(:int, i * FFI.type_size(:int), c.size)
        argvs.put_pointer(i * FFI::Pointer.size, keep[i][0])
        lens.put_pointer(i * FFI::Pointer.size, keep[i][1])
      end
      replies = FFI::MemoryPointer.new(:pointer, n)
      got = FFI::MemoryPointer.new(:size_t)
      err = Native::PoolError.new
      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      status = Native.pool_conn_pipeline(@ptr, n, argcs, argvs, lens, ms, replies, got, err)
      ptrs = replies.get_array_of_pointer(0, n)
      begin
        out = ptrs.first(got.read(:size_t)).map { |p| p.null? ? nil : self.class.convert(p) }
      ensure
        ptrs.each { |p| Native.pool_reply_free(p) unless p.null? }
      end
      raise RedisPool.error_for(status, err) unless status == Native::OK

      out
    end

    # MULTI, the commands and EXEC in one write (go-redis's TxPipeline): EXEC's replies.
    # EXEC's nil raises TransactionAborted; an EXECABORT raises its CommandError.
    def multi(*cmds, timeout: nil)
      replies = pipeline(["MULTI"], *cmds, ["EXEC"], timeout: timeout)
      exec = replies.last
      raise TransactionAborted, "transaction aborted: a WATCHed key changed" if exec.nil?
      raise exec if exec.is_a?(CommandError)

      exec
    end
  end

  # Pub/Sub on a conn of its own (pool_subscriber_t): dialed with the pool's dialer and
  # set-up, outside the pool's turns, and resubscribed to everything when the conn is
  # lost (a :resubscribed message says so). One thread at a time.
  class Subscriber
    # A received message or event: type (:message, :pmessage, :smessage, :subscribe,
    # ..., :resubscribed), channel, pattern, payload (binary Strings or nil), count.
    Message = Struct.new(:type, :channel, :pattern, :payload, :count)

    def initialize(pool)
      @pool = pool
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_subscriber_new(pool.to_ptr, out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      @ptr = out.read_pointer
      @state = [true]
      ObjectSpace.define_finalizer(self, self.class.finalizer(@ptr, @state))
    end

    def self.finalizer(ptr, state)
      proc { Native.pool_subscriber_free(ptr) if state[0] }
    end

    def subscribe(*channels) = change(:pool_subscriber_subscribe, channels)
    def psubscribe(*patterns) = change(:pool_subscriber_psubscribe, patterns)
    def ssubscribe(*channels) = change(:pool_subscriber_ssubscribe, channels)
    # No channels: from all.
    def unsubscribe(*channels) = change(:pool_subscriber_unsubscribe, channels)
    def punsubscribe(*patterns) = change(:pool_subscriber_punsubscribe, patterns)
    def sunsubscribe(*channels) = change(:pool_subscriber_sunsubscribe, channels)

    # The next message or event, waiting at most `timeout` seconds (nil: as long as it
    # takes); nil when none came. A lost conn is replaced on the way (:resubscribed
    # first); if it cannot be dialed, the error is raised and the next call retries.
    def next_message(timeout = 0)
      check_open
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      ms = timeout.nil? ? -1 : (timeout * 1000).ceil
      status = Native.pool_subscriber_receive(@ptr, ms, out, err)
      return nil if status == Native::ERR_TIMEOUT
      raise RedisPool.error_for(status, err) unless status == Native::OK

      ptr = out.read_pointer
      begin
        m = Native::Message.new(ptr)
        bytes = ->(p, n) { p.null? ? nil : p.get_bytes(0, n) }
        Message.new(Native::MESSAGE_KINDS.fetch(m[:kind], m[:kind]), bytes.(m[:channel], m[:channel_len]),
                    bytes.(m[:pattern], m[:pattern_len]), bytes.(m[:payload], m[:payload_len]), m[:count])
      ensure
        Native.pool_message_free(ptr)
      end
    end

    # PINGs the subscriber's conns (pool_subscriber_ping); timeout in seconds.
    def ping(timeout = nil)
      check_open
      err = Native::PoolError.new
      status = Native.pool_subscriber_ping(@ptr, timeout.nil? ? -1 : (timeout * 1000).ceil, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      nil
    end

    # An fd readable when next_message(0) has something (pool_subscriber_fd).
    def fd = @state[0] ? Native.pool_subscriber_fd(@ptr) : -1
    def resubscribes = @state[0] ? Native.pool_subscriber_resubscribes(@ptr) : 0

    def close
      return unless @state[0]

      @state[0] = false
      Native.pool_subscriber_free(@ptr)
    end

    private

    def check_open
      raise ArgumentError, "subscriber was closed" unless @state[0]
    end

    def change(fn, names)
      check_open
      argv, lens, _buf = Args.pack(names.flatten.map { |a| Conn.arg_bytes(a) })
      n = names.flatten.size
      err = Native::PoolError.new
      status = Native.public_send(fn, @ptr, n, n.zero? ? nil : argv, n.zero? ? nil : lens, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      nil
    end
  end

  class Pool
    # A Subscriber on this pool (pool_subscriber_new).
    def subscriber
      Subscriber.new(self)
    end
  end
end
