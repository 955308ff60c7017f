# frozen_string_literal: true

module RedisPool
  # One connection checked out of a Pool (by Pool#get, #try_get, #with or
  # #new_conn) or of a Cluster (Cluster#get, #get_slot, #get_node, #with). Used
  # by one thread at a time until it is given back with Pool#put / #remove /
  # #close_conn, Cluster#put / #remove (or Conn#put / #remove).
  #
  # A Conn that is dropped without being given back is removed from its pool
  # by a GC finalizer (reason "garbage collected"), so its turn is not lost
  # for ever; do not rely on it, give conns back.
  class Conn
    # The Pool (or Cluster) this conn came from.
    attr_reader :pool

    # Internal: Pool and Cluster build conns. `remove_fn`: the Native function
    # the finalizer gives a forgotten conn back with (pool_remove, or
    # pool_cluster_remove for a Cluster's conn).
    def initialize(pool, ptr, remove_fn = :pool_remove)
      @pool = pool
      @ptr = ptr
      # Shared with the finalizer (which must not capture self): [checked out?].
      @state = [true]
      ObjectSpace.define_finalizer(self,
                                   self.class.finalizer(FFI::Pointer.new(pool.to_ptr), ptr, @state, remove_fn))
    end

    # The finalizer proc; built here so that it captures neither the Conn nor the
    # Pool (plain FFI::Pointer copies of the handles, and the shared state).
    # pool_remove is valid even after pool_free: the C library keeps a pool's
    # memory until its last checked-out conn comes back, in any order; so is
    # pool_cluster_remove after pool_cluster_free.
    def self.finalizer(pool_ptr, conn_ptr, state, remove_fn = :pool_remove)
      proc do
        if state[0]
          state[0] = false
          Native.public_send(remove_fn, pool_ptr, conn_ptr, "garbage collected")
        end
      end
    end

    # Unique per pool, never reused (the first conn is 1); 0 once given back.
    def id
      Native.pool_conn_id(@ptr)
    end

    # The socket's fd, for your own I/O (do not close it); -1 once given back.
    def fd
      Native.pool_conn_fd(@ptr)
    end

    # The cluster node ("host:port") a conn of a Cluster (or of a Cluster#node_pool)
    # is connected to. InvalidArgumentError for a conn of a plain Pool or one
    # given back.
    def node
      buf = FFI::MemoryPointer.new(:char, Native::CLUSTER_ADDR_MAX)
      status = Native.pool_cluster_conn_node(@ptr, buf, buf.size)
      raise RedisPool.error_for(status) unless status == Native::OK

      buf.read_string
    end

    # `WAIT numreplicas timeout` (pool_conn_wait_replicas; blocks without the GVL):
    # waits until the writes sent on this conn so far reached at least
    # `numreplicas` replicas, or `timeout` seconds (at least a millisecond) passed,
    # and returns how many replicas have them. Fewer in time raises
    # PoolTimeoutError whose #acked is that count (the writes stay applied on the
    # master, but a failover may lose them); a server that refuses WAIT (a replica)
    # raises IOError and the conn stays good.
    #
    # Under a fiber scheduler (in a non-blocking fiber) it never blocks the thread:
    # WAIT goes through the same non-blocking path as #call (pool_conn_start /
    # pool_conn_finish, the fiber waiting in the scheduler), its reply read as
    # pool_conn_wait_replicas reads it (the reply awaited `timeout` plus the pool's
    # read_timeout).
    def wait_replicas(numreplicas, timeout)
      numreplicas = Integer(numreplicas)
      timeout_ms = (timeout * 1000).ceil
      return wait_replicas_nonblocking(numreplicas, timeout_ms) if Fiber.scheduler && !Fiber.current.blocking?

      acked = FFI::MemoryPointer.new(:int)
      err = Native::PoolError.new
      status = Native.pool_conn_wait_replicas(@ptr, numreplicas, timeout_ms, acked, err)
      unless status == Native::OK
        e = RedisPool.error_for(status, err)
        e.acked = acked.read_int if e.respond_to?(:acked=)
        raise e
      end

      acked.read_int
    end

    # Whether this conn has not been given back to its pool yet.
    def checked_out?
      @state[0]
    end

    # Gives the conn back to its pool (Pool#put).
    def put
      @pool.put(self)
    end

    # Closes the conn and frees its turn (Pool#remove).
    def remove(reason = nil)
      @pool.remove(self, reason)
    end

    # Sends one command and returns its reply as Ruby values:
    #   bulk string -> String (UTF-8 when valid, else binary/ASCII-8BIT)
    #   status ("OK") -> String; integer -> Integer; nil -> nil
    #   array, set, push -> Array; map -> Hash
    #   double -> Float; boolean -> true/false; big number -> Integer
    #   verbatim string -> String (its body)
    #   error reply -> raises CommandError at the top level; inside an array or
    #     map it is returned as a CommandError object (e.g. from EXEC)
    # Arguments: Strings are sent as their bytes (binary safe); Symbols,
    # Integers and Floats as their text; Arrays are flattened.
    #
    # Blocks (without the GVL) for the write and the reply, bounded by the pool's
    # write_timeout / read_timeout. Under a fiber scheduler (Fiber.set_scheduler,
    # in a non-blocking fiber) it never blocks the thread: the command is started
    # with pool_conn_start and the fiber waits for the conn's socket with
    # IO#wait_readable / #wait_writable (so the scheduler runs other fibers)
    # until pool_conn_finish has the reply. A failure mid-way raises IOError or
    # ProtocolError and marks the conn bad: later calls raise BadConnError and
    # putting it back removes it.
    def call(*args)
      args = args.flatten
      raise ArgumentError, "call needs a command" if args.empty?

      reply = command(args)
      raise reply if reply.is_a?(CommandError)

      reply
    end

    # As #call, but an error reply is returned as a CommandError, not raised.
    def call_noraise(*args)
      args = args.flatten
      raise ArgumentError, "call needs a command" if args.empty?

      command(args)
    end

    # Internal: the native handle.
    def to_ptr
      @ptr
    end

    # Internal: marks the conn given back (after a successful put/remove).
    def _returned!
      @state[0] = false
    end

    def inspect
      "#<#{self.class} id=#{id} fd=#{fd}#{checked_out? ? "" : " (given back)"}>"
    end

    private

    def command(args)
      return command_nonblocking(args) if Fiber.scheduler && !Fiber.current.blocking?

      command_blocking(args)
    end

    # #wait_replicas under a fiber scheduler: WAIT through #command_nonblocking,
    # with pool_conn_wait_replicas's checks, read timeout and reading of the reply.
    def wait_replicas_nonblocking(numreplicas, timeout_ms)
      if numreplicas.negative?
        raise InvalidArgumentError.new("numreplicas: #{numreplicas} (must be >= 0)", Native::ERR_INVALID_ARG)
      end
      if timeout_ms < 1
        raise InvalidArgumentError.new("timeout_ms: #{timeout_ms} (must be >= 1)", Native::ERR_INVALID_ARG)
      end

      read_ms = @pool.respond_to?(:_read_timeout_ms) ? @pool._read_timeout_ms.to_i : 0
      read_ms = 1000 unless read_ms.positive?
      reply = command_nonblocking(["WAIT", numreplicas, timeout_ms], timeout_ms + read_ms)
      case reply
      when Integer
        acked = reply.clamp(0, (2**31) - 1)
        return acked if acked >= numreplicas

        e = PoolTimeoutError.new(
          "redis: WAIT: the writes reached #{acked} of the #{numreplicas} replicas asked for " \
          "within #{timeout_ms} ms (they are applied on the master, but a failover may lose them)"
        )
        e.acked = acked
        raise e
      when CommandError
        raise IOError.new("redis: WAIT refused: #{reply.message[0, 200]}", Native::ERR_IO)
      else
        raise ProtocolError.new("redis: WAIT: unexpected reply #{reply.inspect[0, 100]}", Native::ERR_PROTOCOL)
      end
    end

    # The command started without waiting, the fiber parked in the scheduler (IO
    # waits on the conn's socket) until its reply is there or its deadline passed.
    # `timeout_ms` as pool_conn_start's (< 0: the pool's read_timeout).
    def command_nonblocking(args, timeout_ms = -1)
      n, argv, lens, buf = self.class.encode(args)
      want = FFI::MemoryPointer.new(:int)
      err = Native::PoolError.new
      status = Native.pool_conn_start(@ptr, n, argv, lens, timeout_ms, want, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      io = IO.for_fd(Native.pool_conn_fd(@ptr), autoclose: false)
      reply_out = FFI::MemoryPointer.new(:pointer)
      loop do
        ms = Native.pool_conn_wait_ms(@ptr)
        wait = ms.negative? ? nil : (ms / 1000.0) + 0.001
        want.read_int == Native::WANT_WRITE ? io.wait_writable(wait) : io.wait_readable(wait)
        status = Native.pool_conn_finish(@ptr, reply_out, want, err)
        break unless status == Native::ERR_WOULD_BLOCK
      end
      buf.clear
      raise RedisPool.error_for(status, err) unless status == Native::OK

      reply = reply_out.read_pointer
      begin
        self.class.convert(reply)
      ensure
        Native.pool_reply_free(reply)
      end
    end

    # argc, argv, argvlen and the buffer they point into (keep it alive) for args.
    def self.encode(args)
      strs = args.map { |a| arg_bytes(a) }
      n = strs.size
      argv = FFI::MemoryPointer.new(:pointer, n)
      lens = FFI::MemoryPointer.new(:size_t, n)
      buf = FFI::MemoryPointer.new(:char, [strs.sum(&:bytesize), 1].max)
      offset = 0
      strs.each_with_index do |s, i|
        buf.put_bytes(offset, s) unless s.empty?
        argv.put_pointer(i * FFI::Pointer.size, buf + offset)
        offset += s.bytesize
      end
      size_t = FFI.type_size(:size_t)
      strs.each_with_index { |s, i| lens.put(:size_t, i * size_t, s.bytesize) }
      [n, argv, lens, [buf]]
    end

    def command_blocking(args)
      strs = args.map { |a| self.class.arg_bytes(a) }
      n = strs.size
      argv = FFI::MemoryPointer.new(:pointer, n)
      lens = FFI::MemoryPointer.new(:size_t, n)
      buf = FFI::MemoryPointer.new(:char, [strs.sum(&:bytesize), 1].max)
      offset = 0
      strs.each_with_index do |s, i|
        buf.put_bytes(offset, s) unless s.empty?
        argv.put_pointer(i * FFI::Pointer.size, buf + offset)
        offset += s.bytesize
      end
      size_t = FFI.type_size(:size_t)
      strs.each_with_index { |s, i| lens.put(:size_t, i * size_t, s.bytesize) }
      reply_out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_conn_command(@ptr, n, argv, lens, reply_out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      reply = reply_out.read_pointer
      begin
        self.class.convert(reply)
      ensure
        Native.pool_reply_free(reply)
      end
    end

    # The bytes to send for one argument.
    def self.arg_bytes(arg)
      case arg
      when String then arg
      when Symbol, Integer then arg.to_s
      when Float
        if arg.infinite? then arg.positive? ? "+inf" : "-inf"
        else arg.to_s
        end
      else
        raise TypeError, "unsupported command argument #{arg.inspect} (#{arg.class})"
      end
    end

    # Converts a pool_reply_t tree (a pointer to its root) to Ruby values.
    def self.convert(ptr)
      r = Native::Reply.new(ptr)
      case r[:type]
      when Native::REPLY_STRING, Native::REPLY_VERB
        text(r)
      when Native::REPLY_STATUS
        text(r)
      when Native::REPLY_INTEGER
        r[:integer]
      when Native::REPLY_NIL
        nil
      when Native::REPLY_ERROR
        CommandError.new(text(r))
      when Native::REPLY_DOUBLE
        r[:dval]
      when Native::REPLY_BOOL
        r[:integer] != 0
      when Native::REPLY_BIGNUM
        Integer(text(r), 10)
      when Native::REPLY_ARRAY, Native::REPLY_SET, Native::REPLY_PUSH
        children(r).map { |child| convert(child) }
      when Native::REPLY_MAP
        children(r).each_slice(2).to_h { |k, v| [convert(k), convert(v)] }
      else
        raise ProtocolError.new("unknown reply type #{r[:type]}", Native::ERR_PROTOCOL)
      end
    end

    def self.text(r)
      len = r[:len]
      s = len.zero? || r[:str].null? ? +"" : r[:str].get_bytes(0, len)
      s.force_encoding(Encoding::UTF_8)
      s.force_encoding(Encoding::BINARY) unless s.valid_encoding?
      s
    end

    def self.children(r)
      n = r[:elements]
      return [] if n.zero? || r[:element].null?

      r[:element].get_array_of_pointer(0, n)
    end

    private_class_method :text, :children
  end
end
