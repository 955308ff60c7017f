# frozen_string_literal: true

require "io/wait"

module RedisPool
  # A snapshot of a pool's statistics: every field of pool_stats_t but struct_size,
  # in the header's order (the tests check it); see include/redispool.h.
  Stats = Struct.new(
    :hits, :misses, :timeouts, :wait_count, :unusable, :wait_duration_ns,
    :total_conns, :idle_conns, :stale_conns, :pending_requests,
    :dials, :dial_errors, :removed_conns, :evicted_conns,
    :waiting, :dials_in_progress, :leak_suspects, :in_use_conns, :late_returns,
    :reset_conns,
    keyword_init: true
  )

  # A sentinel pool's failover figures (Pool#sentinel_stats): every field of
  # pool_sentinel_stats_t but struct_size, in the header's order (the tests check
  # it). in_failover is 1 while a failover is under way.
  SentinelStats = Struct.new(
    :failovers, :failover_waits, :switches, :conns_retired, :longest_pause_ms, :in_failover,
    keyword_init: true
  )

  # A conn checked out longer than leak_detection_threshold (Pool#leaks).
  Leak = Struct.new(:conn_id, :held_ms)

  # A Redis connection pool with go-redis semantics, over libredispool.
  #
  #   pool = RedisPool::Pool.new("redis://127.0.0.1:6379/0?pool_size=8&pool_timeout=2s")
  #   pool.with(timeout: 0.5) { |conn| conn.call("INCR", "visits") }
  #
  # Thread-safe: share one Pool between threads. Blocking calls (get, with,
  # checkout, new_conn, Conn#call) release the GVL while they wait.
  #
  # connection_pool conventions: #with yields a conn and gives it back;
  # #checkout / #checkin are the per-thread (per-fiber) pair underneath it, and
  # both are reentrant: nested calls in one thread share one conn. Timeouts
  # raise PoolTimeoutError, a ::Timeout::Error.
  #
  # Lifetime: #close closes idle conns and fails later gets; the native pool is
  # freed by the garbage collector (pool_free never blocks), after which conns
  # still checked out can still be given back. A pool keeps working in a child
  # made with Process.fork: the child's first call forgets the parent's conns and
  # dials its own (ask for #notify_io again in the child).
  class Pool
    include GiveBack

    DURATION_OPTIONS = %i[
      dial_timeout pool_timeout conn_max_idle_time conn_max_lifetime
      conn_max_lifetime_jitter dialer_retry_backoff read_timeout write_timeout
      reaper_interval ping_after_idle leak_detection_threshold health_check_bypass
      overtake_window
    ].freeze
    INTEGER_OPTIONS = %i[
      pool_size min_idle_conns max_idle_conns max_active_conns max_concurrent_dials
      dialer_retries db protocol max_reply_bytes max_reply_elements tls_min_version
    ].freeze
    STRING_OPTIONS = %i[
      addr username password client_name
      tls_ca_file tls_ca_dir tls_cert_file tls_key_file tls_server_name
    ].freeze
    BOOLEAN_OPTIONS = %i[pool_fifo tls tls_insecure_skip_verify].freeze
    OPTIONS = (DURATION_OPTIONS + INTEGER_OPTIONS + STRING_OPTIONS + BOOLEAN_OPTIONS).freeze

    # Called by FFI::AutoPointer at GC time. pool_free never blocks; conns still
    # checked out keep the native pool's memory alive until they come back.
    def self.release(ptr)
      Native.pool_free(ptr)
    end

    # Opens a pool, yields it, and closes it when the block ends.
    def self.open(*args, **options)
      pool = new(*args, **options)
      return pool unless block_given?

      begin
        yield pool
      ensure
        pool.close
      end
    end

    # Pool.new(url): a go-redis URL, e.g.
    #   "redis://[[user]:password@]host[:port][/db][?pool_size=10&pool_timeout=1s&...]"
    #   "unix:///path/to/redis.sock?db=2"
    # Pool.new(addr: "127.0.0.1:6379", pool_size: 4, pool_timeout: 1.5, ...): the
    # fields of pool_options_t by keyword, durations in seconds without the _ms
    # (Numeric; passed as pool_options_t's milliseconds, so 0 means what 0 means
    # there, and Float::INFINITY passes -1).
    #
    # pool_timeout means the same in both forms: in a URL, pool_timeout=0 does
    # not wait and a negative value waits for ever; as a keyword, pool_timeout: 0
    # does not wait at all (pool_timeout_ms = 0) and pool_timeout: Float::INFINITY
    # waits for ever.
    #
    # Raises InvalidArgumentError for a bad URL or option. Never waits for a dial.
    def initialize(url = nil, **options)
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      if url
        raise ArgumentError, "pass a URL or keyword options, not both" unless options.empty?

        status = Native.pool_new_url(url.to_str, out, err)
      else
        raise ArgumentError, "pass a URL or options (at least addr:)" if options.empty?

        status = new_from_options(options, out, err)
      end
      raise RedisPool.error_for(status, err) unless status == Native::OK

      adopt(out.read_pointer)
      url ? timeouts_from_url(url) : use_timeouts(@new_options)
      @new_options = nil
    end

    SENTINEL_OPTIONS = %i[sentinel_username sentinel_password poll_interval sentinel_tls].freeze

    # A pool for the master that Redis Sentinel reports for `master_name`, which
    # follows failovers (pool_sentinel_new): new conns go to the address the
    # sentinels give, each checked with ROLE; on +switch-master the conns to the
    # old master are retired.
    #
    #   pool = RedisPool::Pool.sentinel("mymaster", ["10.0.0.1:26379", "10.0.0.2:26379"],
    #                                   password: "master-secret", pool_size: 8)
    #
    # `sentinels`: "host:port" addresses, asked in order. `sentinel_username:`,
    # `sentinel_password:` authenticate to the sentinels (the master's own are
    # `username:` / `password:`); `poll_interval:` seconds between the pool's
    # checks besides listening for failover events (default 1; 0 = only listen).
    # `sentinel_tls: true` reaches the sentinels over TLS with the tls_* options
    # (which `tls: true` applies to the master conns).
    # Every other keyword is a pool option as for Pool.new, but not `addr:`.
    # Contacts no sentinel (the first get does): never waits.
    # InvalidArgumentError for a bad option, an empty list, a missing name.
    def self.sentinel(master_name, sentinels, sentinel_username: nil, sentinel_password: nil,
                      poll_interval: nil, sentinel_tls: false, **options)
      sentinels = [sentinels] if sentinels.is_a?(String)
      sentinels = sentinels.to_ary
      keep = []
      node = native_options(options, keep)
      sopts = Native::SentinelOptions.new
      Native.init_options(sopts)
      sopts[:master_name] = FFI::MemoryPointer.from_string(master_name.to_s).tap { |m| keep << m }
      sopts[:sentinel_addrs] = string_array(sentinels, keep)
      sopts[:sentinel_addrs_len] = sentinels.size
      { sentinel_username: sentinel_username, sentinel_password: sentinel_password }.each do |name, value|
        sopts[name] = FFI::MemoryPointer.from_string(value.to_str).tap { |m| keep << m } unless value.nil?
      end
      sopts[:poll_interval_ms] = duration_ms(:poll_interval, poll_interval) unless poll_interval.nil?
      # TLS to the sentinels, with the tls_* options of the master conns.
      sopts[:sentinel_tls] = sentinel_tls ? true : false

      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_sentinel_new(sopts, node, out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      adopt(out.read_pointer).tap { |pool| pool.send(:use_timeouts, node) }
    end

    # Internal: a Pool over a native pool this object now holds a reference to
    # (released with pool_free by the garbage collector).
    def self.adopt(ptr)
      allocate.tap { |pool| pool.send(:adopt, ptr) }
    end

    # Get: an idle, health-checked conn or a newly dialed one. Waits (without the
    # GVL) for a free turn and the dial: `timeout` seconds at most (nil = the
    # pool's pool_timeout, 0 = do not wait for a turn), then raises
    # PoolTimeoutError. `cancel`: a RedisPool::Cancel another thread may fire
    # (raises CanceledError). Also ClosedError, PoolExhaustedError, DialError.
    # Give the conn back with #put or #remove, or use #with.
    #
    # Under a fiber scheduler (Fiber.set_scheduler; a non-blocking fiber) and
    # without `cancel`, the fiber never parks the thread: it takes an idle conn
    # with #try_get and, on a miss (which starts a background dial while the pool
    # has room), waits for #notify_io with IO#wait_readable, so the scheduler runs
    # the other fibers meanwhile (see #get_in_scheduler). With `cancel` it is the
    # blocking get.
    def get(timeout: nil, cancel: nil)
      return get_in_scheduler(timeout) if cancel.nil? && Fiber.scheduler && !Fiber.current.blocking?

      ms = self.class.timeout_ms(timeout)
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_get_ex(@ptr, ms, cancel ? cancel.to_ptr : nil, out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      Conn.new(self, out.read_pointer)
    end

    # Never waits, dials or resolves: an idle conn, or nil when there is none
    # (exception: true raises WouldBlockError instead). A miss may start a dial in
    # the background whose conn lands in the idle list and makes #notify_io
    # readable. Raises ClosedError after #close.
    def try_get(exception: false)
      out = FFI::MemoryPointer.new(:pointer)
      status = Native.pool_try_get(@ptr, out)
      return Conn.new(self, out.read_pointer) if status == Native::OK
      return nil if status == Native::ERR_WOULD_BLOCK && !exception

      raise RedisPool.error_for(status)
    end

    # A get that never parks the thread in native code: try_get, and while it
    # misses, wait for #notify_io with IO#wait_readable, so under a fiber
    # scheduler (Fiber.set_scheduler) the other fibers keep running. `timeout`
    # in seconds (nil = no limit: the pool's own timeout is not applied here),
    # then PoolTimeoutError. Callers blocked in #get keep their turn order.
    def get_nonblocking(timeout: nil)
      deadline = timeout && Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      io = notify_io
      loop do
        conn = try_get
        return conn if conn

        remaining = deadline && deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        if remaining && remaining <= 0
          raise PoolTimeoutError.new("redis: connection pool timeout (get_nonblocking after #{timeout}s)",
                                     Native::ERR_TIMEOUT)
        end

        io.wait_readable(remaining)
      end
    end

    # #get under a fiber scheduler, in arrival order: the fibers of this pool wait
    # in a FIFO (shared by every thread's fibers), and only the oldest waits on
    # #notify_io (IO#wait_readable, which yields to the scheduler); the others
    # wait in the scheduler's #block until the one before them leaves the queue
    # (with a conn, a timeout or an error) and #unblock's them. So a conn that
    # comes back goes to the fiber that has waited longest, and a fiber that
    # arrives while others wait queues behind them instead of taking it.
    # `timeout` as #get's: nil is the pool's pool_timeout (from its URL or
    # options; forever when negative), 0 waits only for a dial (at most the
    # pool's dial_timeout), Float::INFINITY for ever; then PoolTimeoutError. A
    # dial failure does not end the wait: the freed turn wakes the oldest fiber,
    # whose next miss dials again. ClosedError once the pool is closed (each
    # waiter in turn).
    def get_in_scheduler(timeout = nil)
      waiters = fiber_waiters
      if @waiters_lock.synchronize { waiters.empty? }
        conn = try_get
        return conn if conn
      end

      wait = scheduler_wait(timeout)
      deadline = wait && Process.clock_gettime(Process::CLOCK_MONOTONIC) + wait
      me = FiberWaiter.new(Fiber.current, Fiber.scheduler, false)
      head = @waiters_lock.synchronize do
        waiters << me
        waiters.first.equal?(me)
      end
      begin
        first_turn = !head # a fiber that queued behind others tries once it leads
        io = notify_io
        loop do
          remaining = deadline && deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
          raise scheduler_timeout(wait) if remaining && remaining <= 0

          if @waiters_lock.synchronize { waiters.first.equal?(me) }
            if first_turn
              first_turn = false
              conn = try_get # a miss arms the fd (and may start a dial)
              return conn if conn

              next
            end
            io.wait_readable(remaining)
            conn = try_get # a miss re-arms the fd (and may start a dial)
            return conn if conn
          else
            # Woken by #leave_fiber_queue of the fiber before; the cap only
            # bounds a wake-up lost to a race between threads.
            me.scheduler.block(self, remaining ? [remaining, WAITER_RECHECK].min : WAITER_RECHECK)
          end
        end
      ensure
        leave_fiber_queue(me)
      end
    end

    # Gives `conn` back for reuse (a conn a command failed on is closed instead).
    # Never blocks. InvalidArgumentError for a double put or a foreign conn.
    def put(conn)
      given_back(conn, Native.pool_put(@ptr, conn.to_ptr))
    end

    # Closes `conn` and frees its turn; `reason` is informational.
    def remove(conn, reason = nil)
      given_back(conn, Native.pool_remove(@ptr, conn.to_ptr, reason&.to_s))
    end

    # Checks out a conn, yields it, gives it back, and returns the block's value.
    # The conn always goes back: with #put, or with #remove when the block raised
    # an error that means the conn may be broken - IOError, ProtocolError,
    # BadConnError - or an exception that is not a StandardError (Interrupt,
    # SignalException, ...). Other exceptions (CommandError, your own errors)
    # put it back. Nothing is done if the block gave the conn back itself.
    #
    # Reentrant, as connection_pool's: inside a #with block or between #checkout
    # and #checkin, the same thread (fiber) gets the conn it already holds, and
    # the outermost #with / #checkin gives it back. `timeout` and `cancel` apply
    # only when a conn is actually checked out.
    def with(timeout: nil, cancel: nil)
      held = held_checkout
      if held
        held[1] += 1
        begin
          return yield(held[0])
        ensure
          checkin
        end
      end

      conn = get(timeout: timeout, cancel: cancel)
      Thread.current[@checkout_key] = [conn, 1, Process.pid]
      begin
        yield_then_give_back(conn) { yield conn }
      ensure
        Thread.current[@checkout_key] = nil
      end
    end

    # connection_pool's checkout: the conn this thread (fiber) holds from this pool,
    # checked out with #get (`timeout`, `cancel` as there) unless it already holds
    # one. Every #checkout must be matched by a #checkin; nested ones return the
    # same conn. Raises what #get raises (PoolTimeoutError, ...).
    def checkout(timeout: nil, cancel: nil)
      held = held_checkout
      if held
        held[1] += 1
        return held[0]
      end

      conn = get(timeout: timeout, cancel: cancel)
      Thread.current[@checkout_key] = [conn, 1, Process.pid]
      conn
    end

    # connection_pool's checkin: matches one #checkout (or ends one #with level) of
    # this thread; the last one puts the conn back (force: true puts it back at
    # once). A conn the caller already gave back with #put / #remove is left alone.
    # InvalidArgumentError when this thread holds no conn from this pool.
    def checkin(force: false)
      held = Thread.current[@checkout_key]
      unless held
        raise InvalidArgumentError.new("redispool: checkin without a checkout in this thread",
                                       Native::ERR_INVALID_ARG)
      end

      held[1] -= 1
      return nil if held[1].positive? && !force

      Thread.current[@checkout_key] = nil
      put(held[0]) if held[0].checked_out?
      nil
    end

    # NewConn: dials a conn outside the pool's turns and idle list (it counts in
    # #len and obeys max_active_conns). Give it back with #close_conn.
    def new_conn
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_new_conn(@ptr, out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      Conn.new(self, out.read_pointer)
    end

    # Closes a conn from #new_conn (a conn from #get: as #remove).
    def close_conn(conn)
      status = Native.pool_close_conn(@ptr, conn.to_ptr)
      raise RedisPool.error_for(status) unless status == Native::OK

      conn._returned!
      nil
    end

    # All conns the pool owns: idle, checked out, and #new_conn conns.
    def len
      Native.pool_len(@ptr)
    end

    # Idle conns.
    def idle_len
      Native.pool_idle_len(@ptr)
    end

    # A RedisPool::Stats snapshot.
    def stats
      st = Native::Stats.new
      st[:struct_size] = Native::Stats.size
      status = Native.pool_stats(@ptr, st)
      raise RedisPool.error_for(status) unless status == Native::OK

      Stats.new(**Stats.members.to_h { |m| [m, st[m]] })
    end

    # Conns checked out for longer than the pool's leak_detection_threshold,
    # longest held first: an Array of RedisPool::Leak(conn_id, held_ms).
    # InvalidArgumentError when leak detection is off.
    def leaks
      count = FFI::MemoryPointer.new(:size_t)
      err = Native::PoolError.new
      cap = 0
      buf = nil
      loop do
        status = Native.pool_leaks(@ptr, buf, cap, count, err)
        raise RedisPool.error_for(status, err) unless status == Native::OK

        total = count.read(:size_t)
        if total <= cap
          return Array.new(total) do |i|
            leak = Native::Leak.new(buf + i * Native::Leak.size)
            Leak.new(leak[:conn_id], leak[:held_ms])
          end
        end
        cap = total + 4
        buf = FFI::MemoryPointer.new(Native::Leak, cap)
      end
    end

    # Closes the pool: idle conns are closed, waiters and later gets raise
    # ClosedError, conns still checked out are closed when given back. Idempotent.
    def close
      closed_with(Native.pool_close(@ptr))
    end

    # An IO on the pool's notify fd (pool_notify_fd): readable while #try_get may
    # find a conn. For event loops and fiber schedulers: io.wait_readable(t), then
    # #try_get. The fd belongs to the pool (autoclose: false): never close it.
    # A forked child gets its own fd: this method notices the fork.
    def notify_io
      pid = Process.pid
      return @notify_io if @notify_io && @notify_pid == pid

      fd = Native.pool_notify_fd(@ptr)
      raise RedisPool::Error.new("pool_notify_fd failed: #{SystemCallError.new(FFI.errno).message}") if fd.negative?

      @notify_pid = pid
      @notify_io = IO.for_fd(fd, autoclose: false)
    end

    # Internal: the native handle.
    def to_ptr
      @ptr
    end

    # Internal: the read_timeout in ms as set (<= 0: none), for Conn#wait_replicas
    # under a fiber scheduler.
    def _read_timeout_ms
      @read_timeout_ms
    end

    def inspect
      "#<#{self.class} len=#{len} idle=#{idle_len}#{@closed ? " closed" : ""}>"
    end

    # Seconds (nil, Integer, Float, Rational) to pool_get_ex's timeout_ms.
    def self.timeout_ms(timeout)
      return -1 if timeout.nil?
      raise ArgumentError, "timeout must be >= 0 seconds, got #{timeout.inspect}" if timeout.negative?
      return 2**62 if timeout.to_f.infinite?

      (timeout * 1000).ceil
    end

    # Seconds to a pool_options_t *_ms field; INFINITY -> -1.
    def self.duration_ms(name, value)
      raise TypeError, "#{name} must be a number of seconds" unless value.is_a?(Numeric)
      return -1 if value.to_f.infinite?

      (value * 1000).ceil
    end

    # Internal: a Native::Options filled by Native.init_options, then with the
    # keyword `options` (as for Pool.new). The C strings it points to are appended
    # to `keep`, which must stay referenced until the native call has copied them.
    def self.native_options(options, keep)
      unknown = options.keys - OPTIONS
      raise ArgumentError, "unknown option(s): #{unknown.join(", ")}" unless unknown.empty?

      opts = Native::Options.new
      Native.init_options(opts)
      options.each do |name, value|
        next if value.nil?

        if DURATION_OPTIONS.include?(name)
          opts[:"#{name}_ms"] = duration_ms(name, value)
        elsif INTEGER_OPTIONS.include?(name)
          opts[name] = Integer(value)
        elsif BOOLEAN_OPTIONS.include?(name)
          opts[name] = value ? true : false
        else
          keep << FFI::MemoryPointer.from_string(value.to_str)
          opts[name] = keep.last
        end
      end
      opts
    end

    # Internal: a C string array (const char *const *) of `strings`; the memory is
    # appended to `keep`.
    def self.string_array(strings, keep)
      ptrs = strings.map { |s| FFI::MemoryPointer.from_string(s.to_str).tap { |m| keep << m } }
      array = FFI::MemoryPointer.new(:pointer, [ptrs.size, 1].max)
      array.write_array_of_pointer(ptrs) unless ptrs.empty?
      keep << array
      array
    end

    # The address ("ip:port") of the master a Pool.sentinel pool dials now. When
    # none is known yet, asks the sentinels first (waits at most dial_timeout):
    # DialError when none answers. InvalidArgumentError for a pool not made by
    # Pool.sentinel.
    def sentinel_master_addr
      buf = FFI::MemoryPointer.new(:char, Native::SENTINEL_ADDR_LEN)
      err = Native::PoolError.new
      status = Native.pool_sentinel_master_addr(@ptr, buf, buf.size, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      buf.read_string
    end

    # A RedisPool::SentinelStats snapshot of a Pool.sentinel pool (never waits).
    # InvalidArgumentError for a pool not made by Pool.sentinel.
    def sentinel_stats
      raw = Native::SentinelStats.new
      raw[:struct_size] = Native::SentinelStats.size
      err = Native::PoolError.new
      status = Native.pool_sentinel_stats(@ptr, raw, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      SentinelStats.new(**SentinelStats.members.to_h { |m| [m, raw[m]] })
    end

    private

    def adopt(ptr)
      @ptr = FFI::AutoPointer.new(ptr, self.class.method(:release))
      @closed = false
      @notify_io = nil
      @notify_pid = nil
      # The FIFO of fibers waiting in #get_in_scheduler (made here, before any
      # thread can race to make it; again in a forked child).
      @waiters_lock = Mutex.new
      @waiters_pid = Process.pid
      @fiber_waiters = []
      # The fiber-local slot (Thread#[]) holding [conn, depth, pid] for #checkout.
      @checkout_key = :"redispool_checkout_#{object_id}"
      defaults = Native::Options.new
      Native.init_options(defaults)
      @pool_timeout_ms = defaults[:pool_timeout_ms]
      @dial_timeout_ms = defaults[:dial_timeout_ms]
      @read_timeout_ms = defaults[:read_timeout_ms]
    end

    # The pool_timeout and dial_timeout of a Native::Options, for #get_in_scheduler.
    def use_timeouts(opts)
      @pool_timeout_ms = opts[:pool_timeout_ms]
      @dial_timeout_ms = opts[:dial_timeout_ms]
      @read_timeout_ms = opts[:read_timeout_ms]
    end

    # A fiber queued in #get_in_scheduler, with the scheduler that can wake it.
    FiberWaiter = Struct.new(:fiber, :scheduler, :woken)
    private_constant :FiberWaiter

    # Longest a queued (not leading) fiber sleeps before it checks its place again.
    WAITER_RECHECK = 1.0
    private_constant :WAITER_RECHECK

    # This pool's FIFO of waiting fibers (a new, empty one in a forked child).
    def fiber_waiters
      pid = Process.pid
      return @fiber_waiters if @waiters_pid == pid

      @waiters_lock = Mutex.new
      @waiters_pid = pid
      @fiber_waiters = []
    end

    # Takes `me` out of the queue; when it led, wakes the fiber now first.
    def leave_fiber_queue(me)
      waiters = @fiber_waiters
      next_up = @waiters_lock.synchronize do
        led = waiters.first.equal?(me)
        waiters.delete_if { |w| w.equal?(me) }
        first = waiters.first
        if led && first && !first.woken
          first.woken = true
          first
        end
      end
      next_up&.scheduler&.unblock(self, next_up.fiber)
    end

    def scheduler_timeout(wait)
      s = stats
      PoolTimeoutError.new(
        "redis: connection pool timeout after #{(wait * 1000).ceil}ms in a fiber " \
        "(#{s.total_conns - s.idle_conns}/#{s.total_conns} conns in use, " \
        "#{s.idle_conns} idle, #{s.dial_errors} dial errors so far)",
        Native::ERR_TIMEOUT
      )
    end

    # Seconds a fiber waits in #get_in_scheduler for a `timeout` given to #get
    # (nil: for ever), by #get's rules.
    def scheduler_wait(timeout)
      if timeout.nil?
        return nil if @pool_timeout_ms.negative?
        return @pool_timeout_ms / 1000.0 if @pool_timeout_ms.positive?
      elsif timeout.negative?
        raise ArgumentError, "timeout must be >= 0 seconds, got #{timeout.inspect}"
      elsif timeout.to_f.infinite?
        return nil
      elsif timeout.positive?
        return timeout.to_f
      end
      # No wait for a turn: only for the dial a miss started.
      @dial_timeout_ms.positive? ? @dial_timeout_ms / 1000.0 : 5.0
    end

    # The pool_timeout and dial_timeout of a URL's query (as the library reads them:
    # an integer is seconds, else a Go duration; for dial_timeout <= 0 is none),
    # for #get_in_scheduler. Left at the defaults when absent or unreadable (the
    # library refused a bad value already).
    def timeouts_from_url(url)
      query = url.to_s.split("#", 2)[0].split("?", 2)[1] or return
      query.split("&").each do |pair|
        name, value = pair.split("=", 2)
        ms = value && self.class.url_duration_ms(value)
        next if ms.nil?

        case name
        when "pool_timeout" then @pool_timeout_ms = ms
        when "dial_timeout" then @dial_timeout_ms = ms.positive? ? ms : 0
        when "read_timeout" then @read_timeout_ms = ms
        end
      end
    end

    GO_DURATION_UNITS = { "ns" => 1e-6, "us" => 1e-3, "µs" => 1e-3, "μs" => 1e-3, "ms" => 1,
                          "s" => 1000, "m" => 60_000, "h" => 3_600_000 }.freeze
    private_constant :GO_DURATION_UNITS

    # A URL duration in ms (negative: for ever), or nil when it is not one.
    def self.url_duration_ms(value)
      return Integer(value, 10) * 1000 if value.match?(/\A[+-]?\d+\z/)

      m = value.match(/\A([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)\z/)
      return nil unless m

      ms = m[2].scan(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/).sum { |n, u| n.to_f * GO_DURATION_UNITS[u] }
      m[1] == "-" ? -ms.ceil : ms.ceil
    end

    # [conn, depth, pid] when this thread (fiber) holds a conn from #checkout / #with
    # that is still checked out; forgets one given back behind our back, and one a
    # forked child inherited (its socket is the parent's: the child gets its own).
    def held_checkout
      held = Thread.current[@checkout_key]
      return nil unless held
      return held if held[0].checked_out? && held[2] == Process.pid

      Thread.current[@checkout_key] = nil
    end

    def new_from_options(options, out, err)
      keep = [] # the strings must live until pool_new has copied them
      @new_options = self.class.native_options(options, keep)
      Native.pool_new(@new_options, out, err)
    end
  end
end
