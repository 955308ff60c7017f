# frozen_string_literal: true

# Tests of the Ruby bindings against a real redis-server.
#
#   REDISPOOL_LIB=/path/to/libredispool.so ruby -Ilib test/test_redispool.rb
#
# Uses $REDISPOOL_TEST_REDIS_URL (e.g. "redis://127.0.0.1:7000") when set,
# otherwise starts its own redis-server on a free port and kills it at the end.
# Bounds are generous so the suite stays deterministic on a loaded 2-core box.

require "minitest/autorun"
require "socket"
require "securerandom"
require "redispool"
require_relative "fiber_scheduler"

module TestRedis
  class << self
    attr_reader :url

    def start
      @url = ENV["REDISPOOL_TEST_REDIS_URL"]
      return if @url && !@url.empty?

      5.times do
        port = free_port
        pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no",
                            in: File::NULL, out: File::NULL, err: File::NULL)
        if wait_ready(port, pid)
          @pid = pid
          @url = "redis://127.0.0.1:#{port}"
          Minitest.after_run { stop }
          return
        end
        kill(pid)
      end
      abort "redis-server did not start"
    end

    def stop
      kill(@pid) if @pid
      @pid = nil
    end

    private

    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end

    # Until this very process answers PING (another one might own the port).
    def wait_ready(port, pid)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
      while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
        return false if Process.waitpid(pid, Process::WNOHANG)

        begin
          sock = TCPSocket.new("127.0.0.1", port)
          sock.write("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
          if sock.gets == "+PONG\r\n"
            len = sock.gets[1..].to_i
            info = sock.read(len + 2)
            return true if info[/^process_id:(\d+)/, 1].to_i == pid
          end
        rescue SystemCallError
          nil
        ensure
          sock&.close
        end
        sleep 0.02
      end
      false
    end

    def kill(pid)
      Process.kill(:KILL, pid)
      Process.wait(pid)
    rescue SystemCallError
      nil
    end
  end
end

TestRedis.start

class TestRedisPool < Minitest::Test
  # The test server's URL with query options added.
  def url(**params)
    base = TestRedis.url
    return base if params.empty?

    base + (base.include?("?") ? "&" : "?") + params.map { |k, v| "#{k}=#{v}" }.join("&")
  end

  def key(name)
    "rb-test:#{SecureRandom.hex(6)}:#{name}"
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def setup
    @pools = []
  end

  def teardown
    @pools.each(&:close)
  end

  def pool(**params)
    RedisPool::Pool.new(url(**params)).tap { |p| @pools << p }
  end

  # --- basics ---

  def test_library_version
    assert_match(/\A\d+\.\d+\.\d+/, RedisPool.library_version)
  end

  # The FFI::Struct layouts are written by hand: they must match the header's sizes
  # (the library writes the sizes they give; a wrong layout would be misread).
  # The Rust harness passes the sizes a C program compiled against the header printed.
  def test_struct_layouts_match_the_header
    sizes = ENV["REDISPOOL_C_SIZES"]
    skip "REDISPOOL_C_SIZES not set (run through cargo test --test ruby_binding)" unless sizes
    want = sizes.split.to_h { |kv| k, v = kv.split("="); [k, Integer(v)] }
    native = RedisPool::Native
    got = {
      "pool_options_t" => native::Options.size,
      "pool_stats_t" => native::Stats.size,
      "pool_error_t" => native::PoolError.size,
      "pool_reply_t" => native::Reply.size,
      "pool_leak_t" => native::Leak.size,
      "pool_cluster_options_t" => native::ClusterOptions.size,
      "pool_cluster_info_t" => native::ClusterInfo.size,
      "pool_cluster_node_t" => native::ClusterNode.size,
      "pool_sentinel_options_t" => native::SentinelOptions.size,
      "pool_sentinel_stats_t" => native::SentinelStats.size,
    }
    assert_equal want, got
  end

  # The option structs are filled through the sized initialisers (as the header's
  # pool_*_options_init macros): a binding whose struct is shorter than the
  # library's (built against an older header) gets only its own bytes written. Here
  # the struct is cut to the C API's first version of it, inside a larger buffer of
  # 0xAA bytes; the unsized pool_options_init would write the whole of today's struct.
  def test_options_init_writes_only_the_bindings_struct
    native = RedisPool::Native
    refute native.respond_to?(:pool_options_init), "the unsized initialiser is not bound"
    refute native.respond_to?(:pool_cluster_options_init)
    refute native.respond_to?(:pool_sentinel_options_init)
    { native::Options => [:write_timeout_ms, :pool_options_init_size],
      native::SentinelOptions => [:poll_interval_ms, :pool_sentinel_options_init_size] }.each do |klass, (last, init)|
      members = klass.members
      fields = members.take(members.index(last) + 1).flat_map { |m| [m, klass.layout[m].type] }
      short_class = Class.new(FFI::Struct) { layout(*fields) }
      assert_operator short_class.size, :<, klass.size
      buf = FFI::MemoryPointer.new(:uint8, klass.size + 64)
      buf.put_bytes(0, "\xAA".b * buf.size)
      short = short_class.new(buf)
      native.init_options(short, init)
      assert_equal short_class.size, short[:struct_size], klass.name
      assert_equal "\xAA".b * (buf.size - short_class.size), buf.get_bytes(short_class.size, buf.size - short_class.size)
      whole = native.init_options(klass.new)
      assert_equal klass.size, whole[:struct_size]
    end
    # pool_cluster_options_t has had one version: a shorter one is refused, nothing written.
    short_cluster = Class.new(FFI::Struct) { layout :struct_size, :size_t, :seeds, :pointer }
    buf = FFI::MemoryPointer.new(:uint8, native::ClusterOptions.size)
    buf.put_bytes(0, "\xAA".b * buf.size)
    assert_raises(RedisPool::InvalidArgumentError) do
      native.init_options(short_cluster.new(buf), :pool_cluster_options_init_size)
    end
    assert_equal "\xAA".b * buf.size, buf.get_bytes(0, buf.size)
    assert_equal native::ClusterOptions.size, native.init_options(native::ClusterOptions.new)[:struct_size]
  end

  # --- one source of truth: the header ---

  # include/redispool.h, which the binding's tables must match.
  def header
    @header ||= File.read(ENV.fetch("REDISPOOL_HEADER") { File.expand_path("../../../include/redispool.h", __dir__) })
  end

  # {"POOL_OK" => 0, ...}: the header's #defines whose names match `pattern`.
  def header_defines(pattern)
    header.scan(/^#define (#{pattern}) (-?\d+)\s*$/).to_h { |name, value| [name, Integer(value)] }
  end

  # [[field, c_type, array_length_or_nil], ...] of `struct NAME { ... };` in the header.
  def header_struct(name)
    body = header[/^struct #{name} \{\n(.*?)^\};/m, 1]
    refute_nil body, "struct #{name} not found in the header"
    body.lines.map(&:strip).reject { |l| l.empty? || l.start_with?("//") }.map do |line|
      m = line.match(/\A(.+?)\s*\b(\w+)(?:\[(\w+)\])?;\z/)
      refute_nil m, "cannot parse #{line.inspect} in struct #{name}"
      [m[2], m[1].strip, m[3]]
    end
  end

  # The FFI type a C field type must have in the binding's layout.
  def ffi_type_for(c_type)
    return FFI.find_type(:pointer) if c_type.end_with?("*") || c_type.end_with?("_fn")

    FFI.find_type({ "bool" => :bool, "char" => :char, "double" => :double, "size_t" => :size_t,
                    "int32_t" => :int32, "int64_t" => :int64, "uint32_t" => :uint32,
                    "uint64_t" => :uint64, "pool_status_t" => :int32 }.fetch(c_type))
  end

  def test_status_codes_match_the_header
    want = header_defines("POOL_(?:OK|ERR_\\w+)").transform_keys { |n| n.delete_prefix("POOL_") }
    assert_includes want.keys, "ERR_CLUSTER"
    native = RedisPool::Native
    got = native.constants.grep(/\A(OK|ERR_\w+)\z/).to_h { |c| [c.to_s, native.const_get(c)] }
    assert_equal want.sort.to_h, got.sort.to_h
    # Every error status has its own exception class, which error_for picks.
    classes = RedisPool.error_classes
    assert_equal want.values.reject(&:zero?).sort, classes.keys.sort
    assert_equal classes.size, classes.values.uniq.size
    classes.each do |code, klass|
      err = RedisPool.error_for(code)
      assert_instance_of klass, err
      assert_equal code, err.code
      refute_empty err.message
    end
  end

  def test_reply_types_match_the_header
    want = header_defines("POOL_REPLY_\\w+").transform_keys { |n| n.delete_prefix("POOL_") }
    refute_empty want
    native = RedisPool::Native
    got = native.constants.grep(/\AREPLY_\w+\z/).to_h { |c| [c.to_s, native.const_get(c)] }
    assert_equal want.sort.to_h, got.sort.to_h
  end

  # Field by field (names, order, types), so that a field added to the header is
  # not forgotten, where the size check below only sees the total.
  def test_struct_fields_match_the_header
    native = RedisPool::Native
    defines = header_defines("\\w+")
    { "pool_options" => native::Options, "pool_stats" => native::Stats, "pool_error" => native::PoolError,
      "pool_reply" => native::Reply, "pool_leak" => native::Leak,
      "pool_cluster_options" => native::ClusterOptions, "pool_cluster_info" => native::ClusterInfo,
      "pool_cluster_node" => native::ClusterNode,
      "pool_sentinel_options" => native::SentinelOptions,
      "pool_sentinel_stats" => native::SentinelStats }.each do |name, klass|
      fields = header_struct(name)
      assert_equal fields.map(&:first), klass.members.map(&:to_s), "#{name}: field names"
      fields.each do |field, c_type, len|
        type = klass.new.layout[field.to_sym].type
        if len
          assert_kind_of FFI::Type::Array, type, "#{name}.#{field}"
          assert_equal ffi_type_for(c_type), type.elem_type, "#{name}.#{field}"
          length = len.match?(/\A\d+\z/) ? Integer(len) : defines.fetch(len) { flunk "#{len} not #defined" }
          assert_equal length, type.length, "#{name}.#{field}[#{len}]"
        else
          assert_equal ffi_type_for(c_type), type, "#{name}.#{field} (#{c_type})"
        end
      end
    end
  end

  def test_buffer_sizes_match_the_header
    want = header_defines("POOL_(?:CLUSTER_ADDR_MAX|SENTINEL_ADDR_LEN)")
    assert_equal 2, want.size
    want.each { |name, value| assert_equal value, RedisPool::Native.const_get(name.delete_prefix("POOL_")), name }
  end

  # The keywords of Cluster.new and Pool.sentinel, and the members of
  # ClusterInfo, cover their C structs: a field added to the header must be
  # taken (or listed here as set by the binding itself).
  def test_cluster_and_sentinel_api_covers_the_header
    info = header_struct("pool_cluster_info").map(&:first) - %w[struct_size reserved]
    assert_includes info, "slots_covered"
    assert_equal info, RedisPool::ClusterInfo.members.map(&:to_s)

    keywords = ->(method) { method.parameters.select { |kind, _| kind == :key }.map { |_, n| n.to_s } }
    positional = ->(method) { method.parameters.select { |kind, _| kind == :req }.map { |_, n| n.to_s } }
    as_keyword = ->(field) { field.delete_suffix("_ms") }

    cluster_fields = header_struct("pool_cluster_options").map(&:first) -
                     %w[struct_size seeds_len node] # seeds' length; node = the other keywords
    cluster_new = RedisPool::Cluster.instance_method(:initialize)
    assert_equal cluster_fields.map(&as_keyword).sort, keywords.call(cluster_new).sort
    assert_equal cluster_fields.map(&as_keyword).sort, RedisPool::Cluster::CLUSTER_OPTIONS.map(&:to_s).sort

    sentinel_fields = header_struct("pool_sentinel_options").map(&:first) -
                      %w[struct_size sentinel_addrs_len master_name sentinel_addrs]
    sentinel = RedisPool::Pool.method(:sentinel)
    assert_equal %w[master_name sentinels], positional.call(sentinel)
    assert_equal sentinel_fields.map(&as_keyword).sort, keywords.call(sentinel).sort
    assert_equal sentinel_fields.map(&as_keyword).sort, RedisPool::Pool::SENTINEL_OPTIONS.map(&:to_s).sort
  end

  def test_public_stats_and_options_cover_the_header
    stats = header_struct("pool_stats").map(&:first) - ["struct_size"]
    assert_includes stats, "in_use_conns"
    assert_equal stats, RedisPool::Stats.members.map(&:to_s)
    sentinel_stats = header_struct("pool_sentinel_stats").map(&:first) - ["struct_size"]
    assert_includes sentinel_stats, "in_failover"
    assert_equal sentinel_stats, RedisPool::SentinelStats.members.map(&:to_s)

    want = { duration: [], integer: [], string: [], boolean: [] }
    header_struct("pool_options").each do |field, c_type, _|
      next if %w[struct_size dialer dialer_userdata dialer_userdata_free].include?(field)

      kind = if c_type == "int64_t" && field.end_with?("_ms") then :duration
             elsif c_type.match?(/\Au?int\d+_t\z/) then :integer
             elsif c_type == "bool" then :boolean
             elsif c_type == "const char *" then :string
             else flunk "pool_options.#{field}: no keyword kind for #{c_type}"
             end
      want[kind] << (kind == :duration ? field.delete_suffix("_ms") : field).to_sym
    end
    pool_class = RedisPool::Pool
    assert_equal want[:duration].sort, pool_class::DURATION_OPTIONS.sort
    assert_equal want[:integer].sort, pool_class::INTEGER_OPTIONS.sort
    assert_equal want[:string].sort, pool_class::STRING_OPTIONS.sort
    assert_equal want[:boolean].sort, pool_class::BOOLEAN_OPTIONS.sort
  end

  def test_with_set_get_and_reply_types
    p = pool(pool_size: 2)
    k = key("str")
    result = p.with do |conn|
      assert_operator conn.id, :>, 0
      assert_operator conn.fd, :>=, 0
      assert_equal "OK", conn.call("SET", k, "hello")
      assert_equal "hello", conn.call("GET", k)
      assert_equal Encoding::UTF_8, conn.call("GET", k).encoding
      assert_nil conn.call("GET", key("missing"))
      assert_equal 1, conn.call(:incr, key("n"))
      binary = "a\0b\xff\r\n".b
      conn.call("SET", k, binary)
      got = conn.call("GET", k)
      assert_equal binary, got
      assert_equal Encoding::BINARY, got.encoding
      assert_equal "", (conn.call("SET", k, "") && conn.call("GET", k))
      lk = key("list")
      conn.call("RPUSH", lk, %w[a b c], 42)
      assert_equal ["a", "b", "c", "42"], conn.call("LRANGE", lk, 0, -1)
      conn.call("DEL", k, lk)
    end
    assert_equal 2, result
    assert_equal 1, p.idle_len
    assert_equal 1, p.len
  end

  def test_command_error_is_raised_and_conn_stays_good
    p = pool(pool_size: 1)
    k = key("s")
    p.with do |conn|
      conn.call("SET", k, "x")
      err = assert_raises(RedisPool::CommandError) { conn.call("INCR", k) }
      assert_match(/WRONGTYPE|not an integer/, err.message)
      assert_kind_of RedisPool::Error, err
      assert_nil err.code
      # Returned, not raised, with call_noraise and inside aggregates (EXEC).
      assert_kind_of RedisPool::CommandError, conn.call_noraise("INCR", k)
      conn.call("MULTI")
      conn.call("INCR", k)
      conn.call("SET", k, "y")
      replies = conn.call("EXEC")
      assert_kind_of RedisPool::CommandError, replies[0]
      assert_equal "OK", replies[1]
      assert_equal "PONG", conn.call("PING")
    end
    # CommandError from the block: the conn is put back, not removed.
    assert_raises(RedisPool::CommandError) { p.with { |c| c.call("INCR", k) } }
    assert_equal 1, p.idle_len
    assert_equal 0, p.stats.removed_conns
  end

  def test_resp3_replies
    p = pool(protocol: 3)
    h = key("h")
    z = key("z")
    p.with do |conn|
      conn.call("HSET", h, "f1", "v1", "f2", "v2")
      assert_equal({ "f1" => "v1", "f2" => "v2" }, conn.call("HGETALL", h))
      conn.call("ZADD", z, "1.5", "m")
      assert_equal 1.5, conn.call("ZSCORE", z, "m")
      assert_nil conn.call("GET", key("missing"))
      conn.call("DEL", h, z)
    end
  end

  def test_keyword_options
    host, port = TestRedis.url[%r{redis://([^/?]+)}, 1].split(":")
    p = RedisPool::Pool.new(addr: "#{host}:#{port}", pool_size: 3, pool_timeout: 0.2, read_timeout: 2)
    @pools << p
    assert_equal "PONG", p.with { |c| c.call("PING") }
    assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Pool.new(addr: "127.0.0.1:1", pool_size: -5) }
    assert_raises(ArgumentError) { RedisPool::Pool.new(addr: "x", no_such_option: 1) }
    assert_raises(ArgumentError) { RedisPool::Pool.new(url, pool_size: 1) }
    # The fields after the first version's reach the library (the layout test checks
    # the struct's size; a negative window is refused by name).
    p2 = RedisPool::Pool.new(addr: "#{host}:#{port}", pool_size: 1, health_check_bypass: 0.5,
                             overtake_window: 0.005)
    @pools << p2
    assert_equal "PONG", p2.with { |c| c.call("PING") }
    err = assert_raises(RedisPool::InvalidArgumentError) do
      RedisPool::Pool.new(addr: "#{host}:#{port}", overtake_window: -0.5)
    end
    assert_match(/overtake_window_ms/, err.message)
  end

  def test_max_reply_bytes
    host, port = TestRedis.url[%r{redis://([^/?]+)}, 1].split(":")
    p = RedisPool::Pool.new(addr: "#{host}:#{port}", pool_size: 1, max_reply_bytes: 16,
                            max_reply_elements: 100)
    @pools << p
    k = key("big")
    p.with do |c|
      c.call("SET", k, "x" * 17)
      assert_equal "x" * 16, c.call("GETRANGE", k, "0", "15")
      err = assert_raises(RedisPool::ProtocolError) { c.call("GET", k) }
      assert_match(/max_reply_bytes/, err.message)
    end
    assert_equal 0, p.len # the conn was out of step: closed on put
    assert_raises(RedisPool::InvalidArgumentError) do
      RedisPool::Pool.new(addr: "#{host}:#{port}", max_reply_elements: -1)
    end
  end

  def test_stats_len_and_put_remove
    p = pool(pool_size: 3)
    c1 = p.get
    c2 = p.get
    assert_equal 2, p.len
    assert_equal 0, p.idle_len
    p.put(c1)
    c2.remove("test")
    refute c1.checked_out?
    st = p.stats
    assert_kind_of RedisPool::Stats, st
    assert_equal 2, st.misses
    assert_equal 1, st.idle_conns
    assert_equal 1, st.total_conns
    assert_equal 1, st.removed_conns
    assert_equal 1, p.len
    # Double put and use after put are detected.
    err = assert_raises(RedisPool::InvalidArgumentError) { p.put(c1) }
    assert_equal RedisPool::Native::ERR_INVALID_ARG, err.code
    assert_raises(RedisPool::InvalidArgumentError) { c1.call("PING") }
    c3 = p.get
    assert_equal 1, p.stats.hits
    p.put(c3)
  end

  def test_stats_in_use_conns
    p = pool(pool_size: 4)
    assert_equal 0, p.stats.in_use_conns
    c1 = p.get
    c2 = p.new_conn
    assert_equal 2, p.stats.in_use_conns
    p.put(c1)
    assert_equal 1, p.stats.in_use_conns
    p.close_conn(c2)
    st = p.stats
    assert_equal 0, st.in_use_conns
    assert_equal st.members.size, st.to_a.compact.size, "a Stats field was left nil: #{st.inspect}"
  end

  def test_new_conn_and_close_conn
    p = pool(pool_size: 1)
    c = p.new_conn
    assert_equal "PONG", c.call("PING")
    assert_equal 1, p.len
    p.close_conn(c)
    assert_equal 0, p.len
  end

  # --- with always gives the conn back ---

  def test_with_returns_conn_when_block_raises
    p = pool(pool_size: 1, pool_timeout: "2s")
    assert_raises(RuntimeError) do
      p.with do |conn|
        conn.call("PING")
        raise "boom"
      end
    end
    assert_equal 1, p.idle_len
    assert_equal 0, p.stats.removed_conns
    # break/return out of the block also puts it back.
    v = p.with { |c| break c.call("PING") }
    assert_equal "PONG", v
    assert_equal 1, p.idle_len
    # A conn-breaking error removes it.
    assert_raises(RedisPool::IOError) { p.with { |_c| raise RedisPool::IOError, "simulated" } }
    assert_equal 0, p.idle_len
    assert_equal 0, p.len
    assert_equal 1, p.stats.removed_conns
    # The turn came back: the next get does not time out.
    assert_equal "PONG", p.with(timeout: 1) { |c| c.call("PING") }
    # A conn the block gave back itself is left alone.
    p.with { |c| p.put(c) }
    assert_equal 1, p.idle_len
  end

  def test_io_error_marks_conn_bad
    p = pool(pool_size: 1, read_timeout: "200ms")
    t0 = now
    assert_raises(RedisPool::IOError) do
      p.with { |c| c.call("BLPOP", key("never"), "0") } # blocks past read_timeout
    end
    assert_operator now - t0, :<, 10
    assert_equal 0, p.len
    assert_equal "PONG", p.with(timeout: 2) { |c| c.call("PING") }
  end

  # --- errors map to classes ---

  def test_pool_timeout_from_url
    p = pool(pool_size: 1, pool_timeout: "100ms")
    held = p.get
    t0 = now
    err = assert_raises(RedisPool::PoolTimeoutError) { p.get }
    elapsed = now - t0
    assert_operator elapsed, :>=, 0.08
    assert_operator elapsed, :<, 5
    assert_equal RedisPool::Native::ERR_TIMEOUT, err.code
    assert_match(/connection pool timeout/, err.message)
    assert_equal 1, p.stats.timeouts
    p.put(held)
  end

  def test_explicit_timeout_is_honoured
    p = pool(pool_size: 1, pool_timeout: "30s")
    held = p.get
    t0 = now
    assert_raises(RedisPool::PoolTimeoutError) { p.get(timeout: 0.3) }
    elapsed = now - t0
    assert_operator elapsed, :>=, 0.25
    assert_operator elapsed, :<, 10
    # timeout: 0 does not wait for a turn.
    t0 = now
    assert_raises(RedisPool::PoolTimeoutError) { p.get(timeout: 0) }
    assert_operator now - t0, :<, 5
    assert_raises(RedisPool::PoolTimeoutError) { p.with(timeout: 0.05) { flunk "no conn expected" } }
    assert_raises(ArgumentError) { p.get(timeout: -1) }
    p.put(held)
    assert_equal "PONG", p.with(timeout: 0.5) { |c| c.call("PING") }
  end

  # connection_pool's TimeoutError is a ::Timeout::Error; code written for it
  # rescues Timeout::Error. RedisPool::Error still catches it too.
  def test_pool_timeout_error_is_a_timeout_error
    p = pool(pool_size: 1, pool_timeout: "30s")
    held = p.get
    err = assert_raises(::Timeout::Error) { p.get(timeout: 0.05) }
    assert_instance_of RedisPool::PoolTimeoutError, err
    assert_equal RedisPool::Native::ERR_TIMEOUT, err.code
    assert_kind_of StandardError, err
    caught = begin
      p.with(timeout: 0.05) { flunk "no conn expected" }
    rescue RedisPool::Error => e
      e
    end
    assert_instance_of RedisPool::PoolTimeoutError, caught
    assert_raises(::Timeout::Error) { p.checkout(timeout: 0.05) }
    assert_raises(::Timeout::Error) { p.get_nonblocking(timeout: 0.05) }
    # The widened match is RedisPool::Error's own, not its subclasses'.
    refute RedisPool::ClosedError === err # rubocop:disable Style/CaseEquality
    assert RedisPool::Error === RedisPool::ClosedError.new("x") # rubocop:disable Style/CaseEquality
    p.put(held)
  end

  # --- connection_pool conventions: checkout / checkin ---

  def test_checkout_checkin
    p = pool(pool_size: 1, pool_timeout: "5s")
    conn = p.checkout
    assert_equal "PONG", conn.call("PING")
    # Reentrant: the same thread gets the conn it holds (pool_size 1: no wait).
    assert_same conn, p.checkout(timeout: 0)
    assert_same conn, p.with(timeout: 0) { |c| c }
    p.checkin
    assert conn.checked_out?, "an inner checkin must not give the conn back"
    assert_equal 0, p.idle_len
    # Another thread gets its own conn, so it waits for this one.
    other = Thread.new do
      p.checkout(timeout: 0.05)
    rescue RedisPool::Error => e
      e
    end
    assert_instance_of RedisPool::PoolTimeoutError, other.value
    p.checkin
    refute conn.checked_out?
    assert_equal 1, p.idle_len
    err = assert_raises(RedisPool::InvalidArgumentError) { p.checkin }
    assert_equal RedisPool::Native::ERR_INVALID_ARG, err.code
    # force: gives it back whatever the depth.
    c = p.checkout
    p.checkout
    p.checkin(force: true)
    refute c.checked_out?
    # A conn given back behind checkout's back is not handed out again.
    c = p.checkout
    p.put(c)
    c2 = p.checkout
    assert c2.checked_out?
    refute_same c, c2
    p.checkin
    # Nested with: one conn, given back by the outermost.
    p.with do |outer|
      p.with(timeout: 0) { |inner| assert_same outer, inner }
      assert outer.checked_out?
    end
    assert_equal 1, p.idle_len
    assert_equal 0, p.stats.in_use_conns
  end

  def test_closed
    p = pool
    c = p.get
    p.close
    p.close # idempotent
    assert p.closed?
    err = assert_raises(RedisPool::ClosedError) { p.get }
    assert_equal RedisPool::Native::ERR_CLOSED, err.code
    assert_match(/closed/, err.message)
    assert_raises(RedisPool::ClosedError) { p.try_get }
    p.put(c) # a conn checked out before close is simply closed
    assert_equal 0, p.len
  end

  def test_exhausted
    p = pool(pool_size: 4, max_active_conns: 1)
    c = p.get
    t0 = now
    err = assert_raises(RedisPool::PoolExhaustedError) { p.get(timeout: 5) }
    assert_operator now - t0, :<, 3
    assert_equal RedisPool::Native::ERR_EXHAUSTED, err.code
    p.put(c)
  end

  def test_bad_url
    err = assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Pool.new("http://127.0.0.1:1") }
    assert_equal RedisPool::Native::ERR_INVALID_ARG, err.code
    refute_empty err.message
    err = assert_raises(RedisPool::InvalidArgumentError) { RedisPool::Pool.new(url(no_such_option: 1)) }
    assert_match(/no_such_option/, err.message)
  end

  def test_dial_error
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    p = RedisPool::Pool.new("redis://127.0.0.1:#{port}?dialer_retries=1&dial_timeout=1s&pool_timeout=5s")
    @pools << p
    err = assert_raises(RedisPool::DialError) { p.get }
    assert_match(/127\.0\.0\.1/, err.message)
  end

  # --- cancellation and the GVL ---

  def test_cancel_from_another_thread
    p = pool(pool_size: 1, pool_timeout: "30s")
    held = p.get
    token = RedisPool::Cancel.new
    t0 = now
    waiter = Thread.new do
      p.get(timeout: 20, cancel: token)
    rescue RedisPool::Error => e
      e
    end
    sleep 0.2
    token.fire
    assert token.fired?
    result = waiter.value
    assert_kind_of RedisPool::CanceledError, result
    assert_equal RedisPool::Native::ERR_CANCELED, result.code
    assert_operator now - t0, :<, 10
    # A fired token stays fired.
    assert_raises(RedisPool::CanceledError) { p.with(cancel: token) { flunk "canceled" } }
    p.put(held)
    assert_equal "PONG", p.with(timeout: 1, cancel: RedisPool::Cancel.new) { |c| c.call("PING") }
  end

  def test_other_threads_run_while_one_is_blocked_in_get
    p = pool(pool_size: 1, pool_timeout: "30s")
    held = p.get
    waiting = true
    ticks = 0
    ticker = Thread.new do
      while waiting
        sleep 0.01
        ticks += 1
      end
    end
    t0 = now
    assert_raises(RedisPool::PoolTimeoutError) { p.get(timeout: 1.5) }
    elapsed = now - t0
    waiting = false
    ticker.join
    assert_operator elapsed, :>=, 1.4
    # ~150 with the GVL released; ~0 if get held it.
    assert_operator ticks, :>, 10, "only #{ticks} ticks while blocked in get for #{elapsed.round(2)}s"
    p.put(held)
  end

  def test_command_releases_gvl
    p = pool(pool_size: 1)
    waiting = true
    ticks = 0
    ticker = Thread.new do
      while waiting
        sleep 0.01
        ticks += 1
      end
    end
    p.with { |c| c.call("BLPOP", key("empty"), "1") } # the server waits 1 s
    waiting = false
    ticker.join
    assert_operator ticks, :>, 10
  end

  def test_many_threads_share_a_pool
    p = pool(pool_size: 3, pool_timeout: "20s")
    k = key("counter")
    threads = Array.new(8) do
      Thread.new { 25.times { p.with { |c| c.call("INCR", k) } } }
    end
    threads.each(&:join)
    assert_equal "200", p.with { |c| c.call("GET", k) }
    assert_operator p.len, :<=, 3
    p.with { |c| c.call("DEL", k) }
  end

  # --- event loops ---

  def test_try_get_and_notify_io
    p = pool(pool_size: 2)
    assert_nil p.try_get # empty pool: a miss starts a background dial
    assert_raises(RedisPool::WouldBlockError) { p.try_get(exception: true) } if p.idle_len.zero?
    io = p.notify_io
    assert_same io, p.notify_io
    assert io.wait_readable(10), "notify fd not readable after the background dial"
    conn = nil
    deadline = now + 10
    io.wait_readable(1) until (conn = p.try_get) || now > deadline
    refute_nil conn
    assert_equal "PONG", conn.call("PING")
    p.put(conn)
    c2 = p.get_nonblocking(timeout: 5)
    assert_equal "PONG", c2.call("PING")
    held = p.get
    t0 = now
    assert_raises(RedisPool::PoolTimeoutError) { p.get_nonblocking(timeout: 0.2) }
    assert_operator now - t0, :>=, 0.15
    p.put(c2)
    p.put(held)
  end

  # --- fork ---

  def test_pool_works_in_forked_child
    p = pool(pool_size: 2)
    k = key("fork")
    p.with { |c| c.call("SET", k, "parent") }
    pid = Process.fork do
      status = 1
      begin
        v = p.with(timeout: 5) { |c| c.call("GET", k) }
        p.with(timeout: 5) { |c| c.call("SET", k, "child") }
        status = 0 if v == "parent"
      rescue Exception # rubocop:disable Lint/RescueException
        status = 2
      end
      exit!(status)
    end
    _, st = Process.wait2(pid)
    assert_equal 0, st.exitstatus
    assert_equal "child", p.with { |c| c.call("GET", k) }
    p.with { |c| c.call("DEL", k) }
  end

  # --- finalizers ---

  def test_finalizer_safety
    100.times do |i|
      p = RedisPool::Pool.new(url(pool_size: 2))
      case i % 4
      when 0 then nil # never used
      when 1 then p.with { |c| c.call("PING") }
      when 2 then p.get # checked out, dropped with the pool
      when 3
        p.get.call("PING")
        p.close
      end
    end
    GC.start
    GC.start
    # A token and a cancel-less get after all that.
    50.times { RedisPool::Cancel.new }
    GC.start
    assert_equal "PONG", pool.with { |c| c.call("PING") }
  end

  def test_dropped_conns_are_removed_by_the_gc
    p = pool(pool_size: 100)
    leak = ->(n) { n.times { p.get } }
    leak.call(40)
    assert_equal 40, p.len
    3.times { GC.start }
    # The conservative stack scan may keep a few alive; most are removed.
    assert_operator p.stats.removed_conns, :>, 0
    assert_operator p.len, :<, 40
  end

  # --- pipelines, transactions, pub/sub ---

  def test_pipeline_replies_in_order_with_error_in_place
    p = pool
    p.with do |c|
      c.call("DEL", "rb:pipe")
      r = c.pipeline(["SET", "rb:pipe", "1"], ["INCR", "rb:pipe"], ["LPUSH", "rb:pipe", "x"], ["GET", "rb:pipe"])
      assert_equal "OK", r[0]
      assert_equal 2, r[1]
      assert_kind_of RedisPool::CommandError, r[2]
      assert_equal "2", r[3]
      assert_raises(ArgumentError) { c.pipeline }
    end
  end

  def test_multi_and_watch
    p = pool
    p.with do |c|
      c.call("DEL", "rb:tx")
      assert_equal [1, 2], c.multi(["INCR", "rb:tx"], ["INCR", "rb:tx"])
      c.call("WATCH", "rb:tx")
      p.with { |other| other.call("SET", "rb:tx", "changed") }
      assert_raises(RedisPool::TransactionAborted) { c.multi(["INCR", "rb:tx"]) }
      assert_equal "changed", c.call("GET", "rb:tx")
    end
  end

  def test_header_message_kinds
    want = header_defines("POOL_MSG_\\w+").to_h { |k, v| [v, k.delete_prefix("POOL_MSG_").downcase.to_sym] }
    assert_equal want, RedisPool::Native::MESSAGE_KINDS
    fields = header_struct("pool_message").map(&:first)
    assert_equal fields.map(&:to_sym), RedisPool::Native::Message.members
  end

  def expect_message(sub, type)
    m = sub.next_message(5)
    refute_nil m, "no #{type} message"
    assert_equal type, m.type, m.inspect
    m
  end

  def test_subscriber_messages_and_resubscription
    [2, 3].each do |protocol|
      p = pool(protocol: protocol)
      sub = p.subscriber
      assert_operator sub.fd, :>=, 0
      assert_nil sub.next_message(0)
      sub.subscribe("rb:news")
      sub.psubscribe("rb:sport.*")
      assert_equal "rb:news", expect_message(sub, :subscribe).channel
      expect_message(sub, :psubscribe)
      p.with do |c|
        assert_equal 1, c.call("PUBLISH", "rb:news", "bin\0ary")
        assert_equal 1, c.call("PUBLISH", "rb:sport.ski", "fast")
      end
      assert_equal "bin\0ary".b, expect_message(sub, :message).payload
      m = expect_message(sub, :pmessage)
      assert_equal ["rb:sport.*", "fast"], [m.pattern, m.payload]
      sub.ping(5)
      p.with { |c| assert_equal 1, c.call("CLIENT", "KILL", "TYPE", "pubsub") }
      assert_equal 1, expect_message(sub, :resubscribed).count
      assert_equal 1, sub.resubscribes
      expect_message(sub, :subscribe)
      expect_message(sub, :psubscribe)
      p.with { |c| assert_equal 1, c.call("PUBLISH", "rb:news", "again") }
      assert_equal "again", expect_message(sub, :message).payload
      sub.close
      assert_raises(ArgumentError) { sub.next_message }
    end
  end

  def test_subscriber_after_the_pool_is_closed
    p = pool
    sub = p.subscriber
    p.close
    assert_raises(RedisPool::ClosedError) { sub.next_message(0) }
    sub.close
  end

end

# Conn#call under a fiber scheduler: started with pool_conn_start, the fiber waits
# for the socket in the scheduler, so other fibers run meanwhile.
class TestFiberSchedulerCalls < Minitest::Test
  def test_calls_yield_to_other_fibers_while_waiting_for_replies
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=10")
    conns = Array.new(10) { pool.get }
    replies = []
    ticks = 0
    done = false
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        until done
          ticks += 1
          sleep 0.005
        end
      end
      conns.each_with_index do |c, i|
        Fiber.schedule do
          # BLPOP on an empty list answers nil after 300 ms.
          replies << c.call("BLPOP", "rb:fiber:empty#{i}", "0.3")
          done = true if replies.size == conns.size
        end
      end
    end.join
    assert_equal [nil] * 10, replies
    # Ten 300 ms waits in turn would leave the ticker no turn at all.
    assert_operator ticks, :>, 20, "the fibers blocked the thread"
    big = "x" * (4 << 20)
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        assert_equal "OK", conns[0].call("SET", "rb:fiber:big", big)
        assert_equal big.bytesize, conns[0].call("STRLEN", "rb:fiber:big")
      end
    end.join
    conns.each(&:put)
  ensure
    pool&.close
  end

  # Conn#wait_replicas under a fiber scheduler: WAIT 1 on a server with no replica
  # (300 ms) lets the ticker fiber run meanwhile, and reads the reply as the blocking
  # call does (PoolTimeoutError with #acked 0; enough replicas: the count).
  def test_fibers_wait_replicas_yields_to_other_fibers
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=2")
    conn = pool.get
    ticks = 0
    done = false
    outcome = nil
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        until done
          ticks += 1
          sleep 0.005
        end
      end
      Fiber.schedule do
        conn.call("SET", "rb:fiber:wait", "1")
        begin
          conn.wait_replicas(1, 0.3)
          outcome = :returned
        rescue RedisPool::PoolTimeoutError => e
          outcome = [e.class, e.acked, e.message]
        ensure
          done = true
        end
      end
    end.join
    assert_equal RedisPool::PoolTimeoutError, outcome[0]
    assert_equal 0, outcome[1]
    assert_match(/reached 0 of the 1 replicas/, outcome[2])
    # One 300 ms wait that parked the thread would leave the ticker a tick or two.
    assert_operator ticks, :>, 10, "wait_replicas blocked the thread"
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        outcome = conn.wait_replicas(0, 0.3)
        assert_raises(RedisPool::InvalidArgumentError) { conn.wait_replicas(-1, 0.3) }
        assert_raises(RedisPool::InvalidArgumentError) { conn.wait_replicas(1, 0) }
        assert_equal "PONG", conn.call("PING")
      end
    end.join
    assert_equal 0, outcome
    conn.put
  ensure
    pool&.close
  end

  # A fiber waiting for a conn of a full pool yields: the ticker runs, and the fiber
  # holding the conn gets to give it back (a get that parked the thread would wait
  # for a put that can never run, until pool_timeout).
  def test_a_fiber_waiting_for_a_conn_yields_to_the_others
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=1&pool_timeout=5s")
    holder = pool.get
    got = []
    ticks = 0
    ticks_while_waiting = nil
    waiting = 0
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        ticks += 1 while got.size < 3 && sleep(0.005)
      end
      3.times do |i|
        Fiber.schedule do
          waiting += 1
          case i
          when 0 then pool.with { |c| got << c.call("ECHO", "with") }
          when 1 then pool.checkout.then { |c| got << c.call("ECHO", "checkout"); pool.checkin }
          else pool.get.then { |c| got << c.call("ECHO", "get"); c.put }
          end
        end
      end
      Fiber.schedule do
        # Runs only if the waiters above yielded; the ticker too, meanwhile.
        sleep 0.01 until waiting == 3
        start = ticks
        sleep 0.01 until ticks >= start + 10
        ticks_while_waiting = ticks
        holder.put
      end
    end.join
    assert_equal %w[checkout get with], got.sort
    assert_operator ticks_while_waiting, :>=, 10, "the waiting fibers blocked the thread"
    assert_equal 1, pool.len
  ensure
    pool&.close
  end

  # Fibers waiting for a conn are served in arrival order: five fibers queue for
  # the one conn, then a sixth puts it back and asks for one at once. Without a
  # queue the sixth would take the conn it just put (the waiters have not run yet),
  # and the order of the others would be the scheduler's.
  def test_fibers_get_conns_in_arrival_order
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=1&pool_timeout=10s")
    holder = pool.get
    order = []
    t = Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      5.times do |i|
        Fiber.schedule do
          conn = pool.get
          order << i
          assert_equal i.to_s, conn.call("ECHO", i.to_s) # yields while the reply comes
          conn.put
        end
      end
      Fiber.schedule do
        holder.put
        conn = pool.get
        order << :late
        conn.put
      end
    end
    assert t.join(60), "the fibers hung"
    assert_equal [0, 1, 2, 3, 4, :late], order
    assert_equal 1, pool.len
  ensure
    pool&.close
  end

  # A queued fiber whose own timeout passes leaves the queue without stopping the
  # ones behind it; a closed pool wakes every queued fiber in turn.
  def test_queued_fibers_time_out_and_close_in_turn
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=1&pool_timeout=10s")
    holder = pool.get
    results = []
    t = Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        results << [:first, pool.get.tap(&:put) && :got]
      end
      Fiber.schedule do
        pool.get(timeout: 0.1)
        results << %i[second got]
      rescue RedisPool::PoolTimeoutError
        results << %i[second timeout]
        holder.put # only now: the third, behind the second, gets a turn
      end
      Fiber.schedule do
        results << [:third, pool.get.tap(&:put) && :got]
      end
    end
    assert t.join(60), "the fibers hung"
    assert_equal [%i[second timeout], %i[first got], %i[third got]], results

    holder = pool.get
    errors = []
    t = Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      3.times do
        Fiber.schedule do
          pool.get(timeout: 30)
        rescue RedisPool::Error => e
          errors << e.class
        end
      end
      Fiber.schedule { pool.close }
    end
    assert t.join(60), "the fibers hung"
    assert_equal [RedisPool::ClosedError] * 3, errors
    holder.put
  ensure
    pool&.close
  end

  def test_a_fiber_get_times_out_and_a_closed_pool_wakes_it
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=1&pool_timeout=250ms")
    holder = pool.get
    errors = []
    ticks = 0
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        ticks += 1 while errors.size < 2 && sleep(0.005)
      end
      Fiber.schedule do
        pool.get # the URL's pool_timeout
      rescue RedisPool::Error => e
        errors << e
      end
      Fiber.schedule do
        pool.get(timeout: 0.1)
      rescue RedisPool::Error => e
        errors << e
      end
    end.join
    assert_equal [RedisPool::PoolTimeoutError] * 2, errors.map(&:class)
    assert_match(/in a fiber/, errors[0].message)
    assert_operator ticks, :>, 2, "the waiting fibers blocked the thread"
    err = nil
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        pool.get(timeout: 30)
      rescue RedisPool::Error => e
        err = e
      end
      Fiber.schedule { pool.close }
    end.join
    assert_kind_of RedisPool::ClosedError, err
    holder.put
  ensure
    pool&.close
  end

  def test_a_fiber_get_dials_in_the_background
    pool = RedisPool::Pool.new(addr: TestRedis.url.sub(%r{\Aredis://}, "").sub(%r{/.*\z}, ""),
                               pool_size: 4, pool_timeout: 10)
    got = []
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      8.times do |i|
        Fiber.schedule { pool.with { |c| got << c.call("INCRBY", "rb:fiber:dials", 1) } }
      end
    end.join
    assert_equal 8, got.size
    assert_operator pool.len, :<=, 4
    assert_equal 0, pool.stats.dial_errors
  ensure
    pool&.close
  end

  def test_url_durations_as_the_library_reads_them
    assert_equal 2000, RedisPool::Pool.url_duration_ms("2")
    assert_equal(-1000, RedisPool::Pool.url_duration_ms("-1"))
    assert_equal 0, RedisPool::Pool.url_duration_ms("0")
    assert_equal 250, RedisPool::Pool.url_duration_ms("250ms")
    assert_equal 90_000, RedisPool::Pool.url_duration_ms("1m30s")
    assert_equal 1500, RedisPool::Pool.url_duration_ms("1.5s")
    assert_nil RedisPool::Pool.url_duration_ms("soon")
  end

  def test_a_deadline_under_the_scheduler_is_an_io_error_and_the_conn_is_bad
    pool = RedisPool::Pool.new("#{TestRedis.url}/?pool_size=1&read_timeout=200ms")
    conn = pool.get
    err = nil
    Thread.new do
      Fiber.set_scheduler(TestFiberScheduler.new)
      Fiber.schedule do
        conn.call("BLPOP", "rb:fiber:empty", "5")
      rescue StandardError => e
        err = e
      end
    end.join
    assert_kind_of RedisPool::IOError, err
    assert_match(/timeout/, err.message)
    assert_raises(RedisPool::BadConnError) { conn.call("PING") }
    conn.put
  ensure
    pool&.close
  end
end
