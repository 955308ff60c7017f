# frozen_string_literal: true

# RedisPool::Cluster and RedisPool::Pool.sentinel against a real Redis Cluster
# and a real master + replica + sentinels deployment. tests/ruby_binding.rs
# starts both and runs this file with:
#
#   REDISPOOL_TEST_CLUSTER_SEEDS    "host:port,host:port,..." of the cluster's masters
#   REDISPOOL_TEST_SENTINELS        "host:port,..." of the sentinels
#   REDISPOOL_TEST_SENTINEL_MASTER  "name=ip:port": the monitored name and the master
#
#   REDISPOOL_LIB=... REDISPOOL_TEST_CLUSTER_SEEDS=... ruby -Ilib test/test_cluster_sentinel.rb
#
# A group whose variables are unset is skipped (the Rust harness fails on any
# skip); once they are set, anything wrong is a failure.

require "minitest/autorun"
require "securerandom"
require "socket"
require "redispool"

module ClusterSentinelEnv
  def self.list(name)
    ENV.fetch(name, "").split(",").map(&:strip).reject(&:empty?)
  end

  SEEDS = list("REDISPOOL_TEST_CLUSTER_SEEDS").freeze
  SENTINELS = list("REDISPOOL_TEST_SENTINELS").freeze
  MASTER_NAME, MASTER_ADDR = ENV.fetch("REDISPOOL_TEST_SENTINEL_MASTER", "").split("=", 2)
  REPLICA_ADDR = ENV.fetch("REDISPOOL_TEST_SENTINEL_REPLICA", "")

  # A loopback port nothing listens on (bound, then closed).
  def self.closed_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end
end

class TestCluster < Minitest::Test
  SEEDS = ClusterSentinelEnv::SEEDS

  def setup
    if SEEDS.empty?
      flunk "REDISPOOL_TEST_CLUSTER_SEEDS is set but names no address" if ENV.key?("REDISPOOL_TEST_CLUSTER_SEEDS")
      skip "REDISPOOL_TEST_CLUSTER_SEEDS not set (cargo test --test ruby_binding)"
    end
    @clusters = []
    @tag = SecureRandom.hex(4)
  end

  def teardown
    @clusters&.each(&:close)
  end

  def cluster(*args, **options)
    options = { seeds: SEEDS, pool_size: 4 }.merge(options) if args.empty?
    RedisPool::Cluster.new(*args, **options).tap { |c| @clusters << c }
  end

  # The masters of the slot map, as the cluster itself reports them.
  def masters(c)
    c.nodes.select(&:master?).map(&:addr).sort
  end

  def test_keys_across_many_slots_go_to_their_masters
    c = cluster
    keys = Array.new(300) { |i| "rb:cluster:#{@tag}:#{i}" }
    slots = keys.map { |k| RedisPool::Cluster.key_slot(k) }
    assert_operator slots.uniq.size, :>=, 250, "the keys should spread over many slots"

    nodes_used = Hash.new(0)
    keys.each_with_index do |k, i|
      c.with(k) do |conn|
        assert_equal "OK", conn.call("SET", k, "v#{i}")
        nodes_used[conn.node] += 1
      end
    end
    # Read back through fresh checkouts, each on the key's own master.
    keys.each_with_index do |k, i|
      assert_equal "v#{i}", c.with(k) { |conn| conn.call("GET", k) }, k
    end
    # The server agrees about each slot and owns each key without a redirect.
    keys.first(20).each do |k|
      c.with(k) do |conn|
        assert_equal RedisPool::Cluster.key_slot(k), conn.call("CLUSTER", "KEYSLOT", k)
        assert_equal 1, conn.call("EXISTS", k), "#{k} on #{conn.node}"
      end
    end

    info = c.info
    assert_kind_of RedisPool::ClusterInfo, info
    assert_equal 3, info.masters
    assert_equal 16_384, info.slots_covered
    assert_operator info.refreshes, :>=, 1
    assert_equal 0, info.moved, "a get by key must reach the key's master directly"
    assert_equal 0, info.ask
    assert_operator info.nodes, :>=, 3

    # Every master served some keys; they are the masters the slot map lists.
    assert_equal masters(c), nodes_used.keys.sort
    assert_equal 3, nodes_used.size
    list = c.nodes
    assert_equal 16_384, list.select(&:master?).sum(&:slots)
    list.select(&:master?).each { |n| assert_operator n.slots, :>, 0, n.addr }

    # Stats: the sum over the node pools, and per node.
    total = c.stats
    assert_kind_of RedisPool::Stats, total
    assert_equal 0, total.in_use_conns
    assert_operator total.total_conns, :>=, 3
    assert_operator total.hits + total.misses, :>=, 2 * keys.size + 20
    assert_operator total.hits, :>, 0, "conns are reused"
    per_node = masters(c).map { |addr| c.stats(addr) }
    assert_equal total.total_conns, per_node.sum(&:total_conns)
    assert_equal total.hits, per_node.sum(&:hits)
    per_node.each { |s| assert_operator s.total_conns, :>=, 1 }
  end

  def test_moved_is_followed_and_counted
    c = cluster
    a = "rb:moved:#{@tag}:a"
    node_a = c.with(a, &:node)
    # A key served by another master than a's.
    b = (0...1000).map { |i| "rb:moved:#{@tag}:#{i}" }.find { |k| c.with(k, &:node) != node_a }
    refute_nil b, "no key on another master in 1000 tries"
    before = c.info.moved

    c.with(slot: RedisPool::Cluster.key_slot(a)) do |conn|
      assert_equal node_a, conn.node
      assert_equal "OK", conn.call("SET", b, "moved-value") # MOVED, followed
      assert_equal "moved-value", conn.call("GET", b)
      assert_equal node_a, conn.node, "the conn stays on its own node"
    end
    assert_operator c.info.moved, :>=, before + 2
    # The value landed on b's master.
    assert_equal "moved-value", c.with(b) { |conn| conn.call("GET", b) }

    # With no redirects allowed, the MOVED error reply comes back as a CommandError.
    strict = cluster(seeds: SEEDS, max_redirects: 0)
    strict.with(slot: RedisPool::Cluster.key_slot(a)) do |conn|
      err = assert_raises(RedisPool::CommandError) { conn.call("GET", b) }
      assert_equal "MOVED", err.kind
      assert_equal "PONG", conn.call("PING"), "the conn stays good"
    end
  end

  def test_checkout_get_put_remove_by_key_slot_and_node
    c = cluster(seeds: SEEDS, pool_size: 2)
    k = "rb:checkout:#{@tag}"
    conn = c.get(k)
    assert conn.checked_out?
    assert_same c, conn.pool
    assert_equal "OK", conn.call("SET", k, "1")
    assert_equal 1, c.stats.in_use_conns
    c.put(conn)
    refute conn.checked_out?
    assert_equal 0, c.stats.in_use_conns
    err = assert_raises(RedisPool::InvalidArgumentError) { c.put(conn) }
    assert_equal RedisPool::Native::ERR_INVALID_ARG, err.code

    conn = c.get_slot(RedisPool::Cluster.key_slot(k))
    node = conn.node
    assert_equal "1", conn.call("GET", k)
    removed = c.stats(node).removed_conns
    conn.remove("test")
    assert_equal removed + 1, c.stats(node).removed_conns

    masters(c).each do |addr|
      conn = c.get_node(addr)
      assert_equal addr, conn.node
      assert_equal "master", conn.call("ROLE").first
      conn.put
    end
    assert_equal "PONG", c.with(node: node) { |cn| cn.call("PING") }
    assert_raises(ArgumentError) { c.with { nil } }
    assert_raises(ArgumentError) { c.with(k, slot: 1) { nil } }

    # A block raising IOError-like errors removes the conn; CommandError puts it back.
    removed = c.stats.removed_conns
    assert_raises(RedisPool::CommandError) { c.with(k) { |cn| cn.call("NOSUCHCOMMAND") } }
    assert_equal removed, c.stats.removed_conns
    assert_raises(RedisPool::IOError) { c.with(k) { raise RedisPool::IOError, "broken" } }
    assert_equal removed + 1, c.stats.removed_conns
  end

  def test_slot_node_names_the_master_get_slot_reaches
    c = cluster(seeds: SEEDS, pool_size: 2)
    # Before any get the map is not loaded, and slot_node does not load it.
    assert_raises(RedisPool::ClusterError) { c.slot_node(0) }
    assert_equal 0, c.stats.total_conns
    [0, 8000, 16_383].each do |slot|
      addr = c.get_slot(slot).then { |conn| conn.node.tap { c.put(conn) } }
      assert_equal addr, c.slot_node(slot)
      assert_includes masters(c), addr
    end
    assert_raises(RedisPool::InvalidArgumentError) { c.slot_node(16_384) }
  end

  def test_key_slot_matches_redis
    assert_equal 12_739, RedisPool::Cluster.key_slot("123456789")
    assert_equal RedisPool::Cluster.key_slot("user1000"), RedisPool::Cluster.key_slot("{user1000}.following")
    c = cluster
    ["foo", "", "{tag}x", "a{}b", "\xff\x00bin".b, :sym, 42].each do |k|
      got = c.with(slot: 0) { |conn| conn.call("CLUSTER", "KEYSLOT", k) }
      assert_equal got, RedisPool::Cluster.key_slot(k), k.inspect
    end
  end

  def test_from_url_node_pool_and_refresh
    host, *rest = SEEDS
    url = "redis://#{host}?" + rest.map { |a| "addr=#{a}" }.join("&") + "&pool_size=2&max_redirects=5"
    c = cluster(url)
    k = "rb:url:#{@tag}"
    assert_equal "OK", c.with(k) { |conn| conn.call("SET", k, "u") }
    assert_equal "u", c.with(k) { |conn| conn.call("GET", k) }
    c.refresh(timeout: 5)
    c.refresh(timeout: Float::INFINITY)
    assert_operator c.info.refreshes, :>=, 3

    # A node's pool: MULTI/EXEC on one conn of the key's master.
    node = c.with(k, &:node)
    pool = c.node_pool(node)
    assert_kind_of RedisPool::Pool, pool
    # The key's hash tag keeps it in k's slot, on this node.
    tagged = "{#{k}}:n"
    replies = pool.with do |conn|
      conn.call("MULTI")
      conn.call("INCR", tagged)
      conn.call("INCR", tagged)
      conn.call("EXEC")
    end
    assert_equal [1, 2], replies
    assert_raises(RedisPool::InvalidArgumentError) { pool.close }
  end

  def test_errors_map_to_the_exception_hierarchy
    # No node can give a slot map: ClusterError (POOL_ERR_CLUSTER).
    dead = cluster(seeds: ["127.0.0.1:#{ClusterSentinelEnv.closed_port}"], dial_timeout: 2)
    err = assert_raises(RedisPool::ClusterError) { dead.get("k", timeout: 5) }
    assert_equal RedisPool::Native::ERR_CLUSTER, err.code
    assert_kind_of RedisPool::Error, err
    assert_raises(RedisPool::ClusterError) { dead.refresh(timeout: 5) }
    assert_operator dead.info.refresh_errors, :>=, 1

    c = cluster(seeds: SEEDS, pool_size: 1)
    err = assert_raises(RedisPool::InvalidArgumentError) { c.get_slot(16_384) }
    assert_match(/slot/, err.message)
    assert_raises(RedisPool::InvalidArgumentError) { c.get_slot(-1) }
    assert_raises(RedisPool::InvalidArgumentError) { c.stats("127.0.0.1:1") }

    # Pool errors of the node pool come through: one conn per node, held.
    k = "rb:err:#{@tag}"
    held = c.get(k)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    err = assert_raises(RedisPool::PoolTimeoutError) { c.get(k, timeout: 0.05) }
    assert_kind_of Timeout::Error, err
    assert_equal RedisPool::Native::ERR_TIMEOUT, err.code
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0, :<, 10
    cancel = RedisPool::Cancel.new.fire
    assert_raises(RedisPool::CanceledError) { c.get(k, cancel: cancel) }
    c.put(held)

    # Bad URLs and options.
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Cluster.new("bogus://x") }
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Cluster.new("redis://#{SEEDS.first}/3") }
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Cluster.new(seeds: SEEDS, db: 1) }
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Cluster.new(seeds: SEEDS, max_redirects: 101) }
    assert_raises(ArgumentError) { RedisPool::Cluster.new }
    assert_raises(ArgumentError) { RedisPool::Cluster.new(seeds: SEEDS, no_such_option: 1) }
    assert_raises(ArgumentError) { RedisPool::Cluster.new("redis://#{SEEDS.first}", pool_size: 2) }

    # Closed: every get raises ClosedError; close is idempotent.
    c.close
    assert c.closed?
    assert_raises(RedisPool::ClosedError) { c.get(k) }
    assert_raises(RedisPool::ClosedError) { c.get_node(SEEDS.first) }
    assert_nil c.close
  end

  # A cluster conn dropped without being given back is removed by its GC finalizer
  # (pool_cluster_remove), and clusters dropped with conns out are freed safely.
  def test_dropped_conns_are_removed_by_the_gc
    c = cluster(seeds: SEEDS, pool_size: 100)
    k = "rb:gc:#{@tag}"
    leak = ->(n) { n.times { c.get(k) } }
    leak.call(40)
    assert_equal 40, c.stats.in_use_conns
    3.times { GC.start }
    # The conservative stack scan may keep a few alive; most are removed.
    assert_operator c.stats.removed_conns, :>, 0
    assert_operator c.stats.in_use_conns, :<, 40

    20.times do |i|
      dropped = RedisPool::Cluster.new(seeds: SEEDS, pool_size: 2)
      conn = dropped.get("#{k}:#{i}")
      conn.call("PING")
      dropped.close if i.even?
    end
    3.times { GC.start }
    assert_equal "PONG", c.with(k) { |conn| conn.call("PING") }
  end

  def test_threads_share_one_cluster
    c = cluster(seeds: SEEDS, pool_size: 2)
    errors = Queue.new
    threads = Array.new(8) do |t|
      Thread.new do
        50.times do |i|
          k = "rb:threads:#{@tag}:#{t}:#{i}"
          c.with(k, timeout: 10) do |conn|
            conn.call("SET", k, i)
            errors << "#{k}: #{conn.call("GET", k).inspect}" unless conn.call("GET", k) == i.to_s
          end
        end
      rescue StandardError => e
        errors << "thread #{t}: #{e.class}: #{e.message}"
      end
    end
    threads.each { |th| assert th.join(60), "a thread hung" }
    assert_empty Array.new(errors.size) { errors.pop }
    s = c.stats
    assert_equal 0, s.in_use_conns
    assert_operator s.total_conns, :<=, 3 * 2
  end
end

class TestSentinel < Minitest::Test
  SENTINELS = ClusterSentinelEnv::SENTINELS
  MASTER_NAME = ClusterSentinelEnv::MASTER_NAME
  MASTER_ADDR = ClusterSentinelEnv::MASTER_ADDR

  def setup
    vars = %w[REDISPOOL_TEST_SENTINELS REDISPOOL_TEST_SENTINEL_MASTER]
    if SENTINELS.empty? || MASTER_NAME.to_s.empty? || MASTER_ADDR.to_s.empty?
      if vars.any? { |v| ENV.key?(v) }
        flunk "set both #{vars.join(" and ")} (\"host:port,...\" and \"name=ip:port\"), got " \
              "#{vars.map { |v| ENV[v].inspect }.join(" and ")}"
      end
      skip "#{vars.join(" / ")} not set (cargo test --test ruby_binding)"
    end
    @pools = []
  end

  def teardown
    @pools&.each(&:close)
  end

  def sentinel_pool(name = MASTER_NAME, sentinels = SENTINELS, **options)
    RedisPool::Pool.sentinel(name, sentinels, **options).tap { |p| @pools << p }
  end

  def test_sentinel_pool_reaches_the_master
    pool = sentinel_pool(pool_size: 2, poll_interval: 0.5)
    assert_kind_of RedisPool::Pool, pool
    assert_equal MASTER_ADDR, pool.sentinel_master_addr
    k = "rb:sentinel:#{SecureRandom.hex(4)}"
    pool.with do |conn|
      role = conn.call("ROLE")
      assert_equal "master", role.first, role.inspect
      assert_equal 1, conn.call("INCR", k)
      assert_equal 2, conn.call("INCR", k)
    end
    # Many more, from several threads, all on the master.
    threads = Array.new(4) { Thread.new { 25.times { pool.with { |c| c.call("INCR", k) } } } }
    threads.each { |t| assert t.join(60), "a thread hung" }
    assert_equal "102", pool.with { |c| c.call("GET", k) }
    s = pool.stats
    assert_operator s.dials, :>=, 1
    assert_operator s.dials, :<=, 2
    assert_equal 0, s.in_use_conns
    assert_equal 0, s.dial_errors

    # The same master, reached directly, sees the writes.
    direct = RedisPool::Pool.new(addr: MASTER_ADDR).tap { |p| @pools << p }
    assert_equal "102", direct.with { |c| c.call("GET", k) }
    # A plain pool is not a sentinel pool; its conns are not cluster conns.
    assert_raises(RedisPool::InvalidArgumentError) { direct.sentinel_master_addr }
    assert_raises(RedisPool::InvalidArgumentError) { direct.with(&:node) }
  end

  def test_sentinel_with_a_single_address_string_and_sentinel_options
    pool = sentinel_pool(MASTER_NAME, SENTINELS.first, sentinel_username: "", sentinel_password: "",
                                                       poll_interval: 0, protocol: 3,
                                                       client_name: "rb-sentinel-node")
    pool.with do |c|
      assert_equal "master", c.call("ROLE").first
      # The pool options reach the master conns.
      assert_equal "rb-sentinel-node", c.call("CLIENT", "GETNAME")
      assert_equal 3, c.call("HELLO")["proto"]
    end
    assert_equal MASTER_ADDR, pool.sentinel_master_addr
  end

  def test_wait_replicas_and_sentinel_stats
    flunk "REDISPOOL_TEST_SENTINEL_REPLICA not set" if ClusterSentinelEnv::REPLICA_ADDR.empty?
    pool = sentinel_pool(pool_size: 2)
    k = "rb:sentinel:waited:#{SecureRandom.hex(4)}"
    pool.with do |conn|
      assert_equal "OK", conn.call("SET", k, "1")
      assert_equal 1, conn.wait_replicas(1, 10)
      # The deployment has one replica: two never acknowledge.
      e = assert_raises(RedisPool::PoolTimeoutError) { conn.wait_replicas(2, 0.1) }
      assert_equal 1, e.acked
      assert_raises(RedisPool::InvalidArgumentError) { conn.wait_replicas(-1, 0.1) }
      assert_equal "1", conn.call("GET", k)
    end
    st = pool.sentinel_stats
    assert_kind_of RedisPool::SentinelStats, st
    assert_equal [0, 0, 0], [st.failovers, st.switches, st.in_failover]

    direct = RedisPool::Pool.new(addr: MASTER_ADDR).tap { |p| @pools << p }
    assert_raises(RedisPool::InvalidArgumentError) { direct.sentinel_stats }
    # A replica refuses WAIT: IOError, and the conn stays good.
    replica = RedisPool::Pool.new(addr: ClusterSentinelEnv::REPLICA_ADDR).tap { |p| @pools << p }
    replica.with do |conn|
      assert_raises(RedisPool::IOError) { conn.wait_replicas(1, 0.1) }
      assert_equal "PONG", conn.call("PING")
    end
  end

  def test_sentinel_errors
    # A name the sentinels do not monitor: the dial fails and names the problem.
    pool = sentinel_pool("rb-no-such-master", dialer_retries: 1, dial_timeout: 2)
    err = assert_raises(RedisPool::Error) { pool.get(timeout: 10) }
    assert_kind_of RedisPool::DialError, err
    assert_equal RedisPool::Native::ERR_DIAL, err.code
    assert_raises(RedisPool::DialError) { pool.sentinel_master_addr }

    # Bad arguments: InvalidArgumentError from the C side, ArgumentError from Ruby's.
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Pool.sentinel(MASTER_NAME, []) }
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Pool.sentinel("", SENTINELS) }
    assert_raises(RedisPool::InvalidArgumentError) do
      RedisPool::Pool.sentinel(MASTER_NAME, SENTINELS, addr: MASTER_ADDR)
    end
    assert_raises(ArgumentError) { RedisPool::Pool.sentinel(MASTER_NAME, SENTINELS, nope: 1) }
    assert_raises(TypeError) { RedisPool::Pool.sentinel(MASTER_NAME, SENTINELS, poll_interval: "1s") }

    # Closed: ClosedError.
    good = sentinel_pool
    good.with { |c| c.call("PING") }
    good.close
    assert_raises(RedisPool::ClosedError) { good.get }
  end
end
