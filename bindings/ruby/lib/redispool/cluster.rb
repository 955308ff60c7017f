# frozen_string_literal: true

module RedisPool
  # Cluster-wide counters and gauges (pool_cluster_info_t but struct_size and
  # reserved, in the header's order; the tests check it): slot map refreshes
  # (and failed ones), MOVED / ASK redirects followed, TRYAGAIN / CLUSTERDOWN
  # retries; nodes with a pool, masters in the slot map, slots covered (16384
  # when the cluster is whole).
  ClusterInfo = Struct.new(
    :refreshes, :refresh_errors, :moved, :ask, :retries, :nodes, :masters, :slots_covered,
    keyword_init: true
  )

  # One node of Cluster#nodes: its "host:port", whether it serves slots as a
  # master per the slot map, and how many slots it serves.
  ClusterNode = Struct.new(:addr, :master, :slots) do
    alias_method :master?, :master
  end

  # A Redis Cluster client's pools (pool_cluster_t): one Pool per node, the slot
  # map loaded on first use, MOVED / ASK followed by Conn#call.
  #
  #   cluster = RedisPool::Cluster.new("redis://10.0.0.1:7000?addr=10.0.0.2:7000&pool_size=8")
  #   cluster.with("user:42") { |conn| conn.call("INCR", "user:42") }
  #
  # #get(key) checks out a conn to the master serving the key's hash slot
  # (#get_slot for a slot, #get_node for any node); give it back with #put /
  # #remove, or let #with do it. Commands on a cluster conn that get MOVED or ASK
  # are sent again where the reply points (at most max_redirects times), and the
  # reply of that node is returned; the conn stays on its own node.
  #
  # Thread-safe: share one Cluster between threads. Errors are those of Pool
  # (PoolTimeoutError, DialError, ClosedError, ...) and ClusterError when no node
  # can give the slot map or no master serves the slot.
  #
  # Lifetime as Pool: #close closes every node pool; the native cluster is freed
  # by the garbage collector (pool_cluster_free never blocks), and conns still
  # checked out can still be given back after that.
  class Cluster
    include GiveBack

    # Options of the cluster itself; every other keyword is a node pool option.
    CLUSTER_OPTIONS = %i[seeds max_redirects refresh_min_interval].freeze

    # Called by FFI::AutoPointer at GC time; pool_cluster_free never blocks.
    def self.release(ptr)
      Native.pool_cluster_free(ptr)
    end

    # Opens a cluster, yields it, and closes it when the block ends.
    def self.open(*args, **options)
      cluster = new(*args, **options)
      return cluster unless block_given?

      begin
        yield cluster
      ensure
        cluster.close
      end
    end

    # The hash slot of `key` (0..16383), as Redis Cluster computes it: CRC16 of
    # the key, or of its hash tag ("{user42}:cart" -> of "user42").
    def self.key_slot(key)
      bytes = Conn.arg_bytes(key)
      buf = FFI::MemoryPointer.new(:char, [bytes.bytesize, 1].max)
      buf.put_bytes(0, bytes) unless bytes.empty?
      Native.pool_cluster_key_slot(buf, bytes.bytesize)
    end

    # Cluster.new(url): a go-redis cluster URL (pool_cluster_new_url), e.g.
    #   "redis://[[user]:password@]host:port?addr=host2:port2&addr=host3:port3&pool_size=8"
    # whose host and every addr are seeds; max_redirects and refresh_min_interval
    # are the cluster's, every other parameter a node pool option as in Pool.new.
    #
    # Cluster.new(seeds: ["10.0.0.1:7000", "10.0.0.2:7000"], max_redirects: 3,
    # refresh_min_interval: 0.1, pool_size: 8, password: "...", ...): the seeds
    # ("host:port" of any nodes; one is enough), MOVED / ASK redirects followed
    # per command (default 3, 0 = none), the least time in seconds between two
    # slot map refreshes triggered by MOVED (default 0.1), and every node pool
    # option as for Pool.new (its addr: is one more seed; db must be 0).
    #
    # Dials nothing (the first get loads the slot map). InvalidArgumentError for
    # a bad URL or option.
    def initialize(url = nil, seeds: nil, max_redirects: nil, refresh_min_interval: nil, **options)
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      if url
        unless seeds.nil? && max_redirects.nil? && refresh_min_interval.nil? && options.empty?
          raise ArgumentError, "pass a URL or keyword options, not both"
        end

        status = Native.pool_cluster_new_url(url.to_str, out, err)
      else
        raise ArgumentError, "pass a URL or options (at least seeds:)" if seeds.nil? && options[:addr].nil?

        seeds = [seeds] if seeds.is_a?(String)
        seeds = Array(seeds).map(&:to_str)
        keep = [] # the strings must live until pool_cluster_new has copied them
        copts = Native::ClusterOptions.new
        Native.init_options(copts)
        copts[:seeds] = Pool.string_array(seeds, keep)
        copts[:seeds_len] = seeds.size
        copts[:node] = Pool.native_options(options, keep)
        copts[:max_redirects] = Integer(max_redirects) unless max_redirects.nil?
        unless refresh_min_interval.nil?
          copts[:refresh_min_interval_ms] = Pool.duration_ms(:refresh_min_interval, refresh_min_interval)
        end
        status = Native.pool_cluster_new(copts, out, err)
      end
      raise RedisPool.error_for(status, err) unless status == Native::OK

      @ptr = FFI::AutoPointer.new(out.read_pointer, self.class.method(:release))
      @closed = false
    end

    # A conn to the master serving `key`'s hash slot (a String, binary safe, or a
    # Symbol / Integer). The first get loads the slot map. `timeout`, `cancel`:
    # as Pool#get (nil = the node options' pool_timeout). Raises what Pool#get
    # raises, and ClusterError.
    def get(key, timeout: nil, cancel: nil)
      bytes = Conn.arg_bytes(key)
      buf = FFI::MemoryPointer.new(:char, [bytes.bytesize, 1].max)
      buf.put_bytes(0, bytes) unless bytes.empty?
      checked_out do |out, err|
        Native.pool_cluster_get(@ptr, buf, bytes.bytesize, Pool.timeout_ms(timeout), cancel&.to_ptr, out, err)
      end
    end

    # A conn to the master serving hash slot `slot` (0..16383, else
    # InvalidArgumentError). Otherwise as #get.
    def get_slot(slot, timeout: nil, cancel: nil)
      slot = Integer(slot)
      unless slot.between?(-2**31, 2**31 - 1)
        raise InvalidArgumentError.new("cluster: slot #{slot} out of range 0..16383", Native::ERR_INVALID_ARG)
      end

      checked_out do |out, err|
        Native.pool_cluster_get_slot(@ptr, slot, Pool.timeout_ms(timeout), cancel&.to_ptr, out, err)
      end
    end

    # The master ("host:port") serving hash slot `slot` per the slot map as it is
    # now (pool_cluster_slot_node): never loads the map, dials or waits, so a fiber
    # may route a slot to its #node_pool and wait there. ClusterError before a get
    # (or #refresh) loaded the map, or when no master serves the slot;
    # InvalidArgumentError for a slot outside 0..16383.
    def slot_node(slot)
      slot = Integer(slot)
      unless slot.between?(-2**31, 2**31 - 1)
        raise InvalidArgumentError.new("cluster: slot #{slot} out of range 0..16383", Native::ERR_INVALID_ARG)
      end

      buf = FFI::MemoryPointer.new(:char, Native::CLUSTER_ADDR_MAX)
      status = Native.pool_cluster_slot_node(@ptr, slot, buf, buf.size)
      raise RedisPool.error_for(status) unless status == Native::OK

      buf.read_string
    end

    # A conn to node `addr` ("host:port"; master or replica, known or not), from
    # its pool (made on first use). Does not need the slot map. Otherwise as #get.
    def get_node(addr, timeout: nil, cancel: nil)
      checked_out do |out, err|
        Native.pool_cluster_get_node(@ptr, addr.to_str, Pool.timeout_ms(timeout), cancel&.to_ptr, out, err)
      end
    end

    # Gives a conn from #get* back to its node's pool (a conn a command failed on
    # is closed instead). InvalidArgumentError for a double put or a foreign conn.
    def put(conn)
      given_back(conn, Native.pool_cluster_put(@ptr, conn.to_ptr))
    end

    # Closes a conn from #get* and frees its turn in its node's pool.
    def remove(conn, reason = nil)
      given_back(conn, Native.pool_cluster_remove(@ptr, conn.to_ptr, reason&.to_s))
    end

    # Checks out a conn for `key` (or `slot:`, or `node:` an address), yields it,
    # gives it back and returns the block's value; the conn goes back as with
    # Pool#with: removed when the block raised IOError, ProtocolError,
    # BadConnError or a non-StandardError, put back otherwise. Not reentrant
    # (each call checks out its own conn: keys may live on different nodes).
    def with(key = nil, slot: nil, node: nil, timeout: nil, cancel: nil)
      given = [!key.nil?, !slot.nil?, !node.nil?].count(true)
      raise ArgumentError, "pass exactly one of key, slot: or node:" unless given == 1

      conn = if !key.nil? then get(key, timeout: timeout, cancel: cancel)
             elsif !slot.nil? then get_slot(slot, timeout: timeout, cancel: cancel)
             else get_node(node, timeout: timeout, cancel: cancel)
             end
      yield_then_give_back(conn) { yield conn }
    end

    # The pool of node `addr` ("host:port"; made on first use) as a Pool, e.g.
    # for MULTI/EXEC or a sticky conn on one node; its conns follow MOVED / ASK
    # too. The cluster owns it: Pool#close on it raises InvalidArgumentError
    # (close the cluster instead). ClosedError after #close.
    def node_pool(addr)
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = Native.pool_cluster_node_pool(@ptr, addr.to_str, out, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      Pool.adopt(out.read_pointer)
    end

    # Reloads the slot map now (waits first for a refresh already running), for
    # at most `timeout` seconds (nil = the node options' pool_timeout;
    # Float::INFINITY = no bound but each node's dial and read timeouts).
    # ClusterError when no node answered, PoolTimeoutError, ClosedError.
    def refresh(timeout: nil)
      ms = if timeout.nil? then -1
           elsif timeout.to_f.infinite? then 0
           else [Pool.timeout_ms(timeout), 1].max
           end
      err = Native::PoolError.new
      status = Native.pool_cluster_refresh(@ptr, ms, err)
      raise RedisPool.error_for(status, err) unless status == Native::OK

      nil
    end

    # A RedisPool::Stats of node `addr`'s pool, or with nil the sum over every
    # node pool. InvalidArgumentError for a node without a pool.
    def stats(addr = nil)
      st = Native::Stats.new
      st[:struct_size] = Native::Stats.size
      status = Native.pool_cluster_stats(@ptr, addr&.to_str, st)
      raise RedisPool.error_for(status) unless status == Native::OK

      Stats.new(**Stats.members.to_h { |m| [m, st[m]] })
    end

    # A RedisPool::ClusterInfo snapshot.
    def info
      raw = Native::ClusterInfo.new
      raw[:struct_size] = Native::ClusterInfo.size
      status = Native.pool_cluster_info(@ptr, raw)
      raise RedisPool.error_for(status) unless status == Native::OK

      ClusterInfo.new(**ClusterInfo.members.to_h { |m| [m, raw[m]] })
    end

    # The nodes, as RedisPool::ClusterNode: masters of the slot map first, then
    # replicas and other nodes with a pool; by address within each group.
    def nodes
      count = FFI::MemoryPointer.new(:size_t)
      cap = 0
      buf = nil
      loop do
        status = Native.pool_cluster_nodes(@ptr, buf, cap, count)
        raise RedisPool.error_for(status) unless status == Native::OK

        total = count.read(:size_t)
        if total <= cap
          return Array.new(total) do |i|
            node = Native::ClusterNode.new(buf + i * Native::ClusterNode.size)
            ClusterNode.new(node[:addr].to_s, node[:master] != 0, node[:slots])
          end
        end
        cap = total + 4
        buf = FFI::MemoryPointer.new(Native::ClusterNode, cap)
      end
    end

    # Closes every node pool: idle conns are closed, waiters and later gets raise
    # ClosedError, conns checked out are closed when given back. Idempotent.
    def close
      closed_with(Native.pool_cluster_close(@ptr))
    end

    # Internal: the native handle.
    def to_ptr
      @ptr
    end

    def inspect
      i = info
      "#<#{self.class} nodes=#{i.nodes} masters=#{i.masters} slots=#{i.slots_covered}" \
        "#{@closed ? " closed" : ""}>"
    end

    private

    # Runs the native get in the block with (out, err) and wraps the conn.
    def checked_out
      out = FFI::MemoryPointer.new(:pointer)
      err = Native::PoolError.new
      status = yield out, err
      raise RedisPool.error_for(status, err) unless status == Native::OK

      Conn.new(self, out.read_pointer, :pool_cluster_remove)
    end
  end
end
