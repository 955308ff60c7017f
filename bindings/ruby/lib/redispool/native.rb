# frozen_string_literal: true

require "ffi"

module RedisPool
  # The raw C ABI of libredispool (include/redispool.h), attached with the ffi gem.
  # Internal: use RedisPool::Pool, Cluster, Conn and Cancel instead.
  #
  # Every function that can wait (for a turn, a dial or a reply) is attached with
  # `blocking: true`: ffi then releases the GVL for the call, so other Ruby threads
  # keep running while one thread waits in pool_get. Such a call cannot be
  # interrupted by Thread#raise, Thread#kill or Timeout.timeout (they take effect
  # only after it returns): bound it with a timeout and, to stop it early, a
  # cancel token (RedisPool::Cancel). Cheap calls that never wait keep the GVL.
  module Native
    extend FFI::Library

    # The SONAME of the C library this binding is written against: the name an
    # installed runtime library is found by (a runtime package ships only it, not
    # the "libredispool.so" linker name of a development install).
    SONAME = "libredispool.so.0"

    # The library: $REDISPOOL_LIB (a path) when set, else an installed libredispool
    # found by the dynamic loader (ld.so.cache, LD_LIBRARY_PATH): its SONAME first,
    # then "libredispool.so" (FFI's name for "redispool"). One array of
    # alternatives: ffi_lib takes each argument as a library that must load, each
    # array as names of which the first that loads wins.
    LIBRARY = ENV["REDISPOOL_LIB"].then { |path| path.nil? || path.empty? ? nil : path }
    LIBRARY_NAMES = (LIBRARY ? [LIBRARY] : [SONAME, "redispool"]).freeze
    begin
      ffi_lib LIBRARY_NAMES
    rescue LoadError => e
      raise LoadError, "redispool: cannot load the C library (tried #{LIBRARY_NAMES.join(", ")}): " \
                       "install it (scripts/install.sh, then ldconfig), point LD_LIBRARY_PATH at its " \
                       "directory, or set REDISPOOL_LIB to its path. #{e.message}"
    end

    # Status codes (POOL_OK, POOL_ERR_*): stable values. test_redispool.rb checks
    # that these are exactly the POOL_OK / POOL_ERR_* of include/redispool.h.
    OK = 0
    ERR_CLOSED = 1
    ERR_EXHAUSTED = 2
    ERR_TIMEOUT = 3
    ERR_DIAL = 4
    ERR_INVALID_ARG = 5
    ERR_WOULD_BLOCK = 6
    # pool_conn_start / pool_conn_finish: what to wait for on the conn's fd.
    WANT_READ = 1
    WANT_WRITE = 2
    ERR_CANCELED = 7
    ERR_BAD_CONN = 8
    ERR_HANDSHAKE = 9
    ERR_IO = 10
    ERR_PROTOCOL = 11
    ERR_INTERNAL = 12
    ERR_CLUSTER = 13
    ERR_TLS = 14

    # Reply types (POOL_REPLY_*), checked against the header as the status codes.
    REPLY_STRING = 1
    REPLY_ARRAY = 2
    REPLY_INTEGER = 3
    REPLY_NIL = 4
    REPLY_STATUS = 5
    REPLY_ERROR = 6
    REPLY_DOUBLE = 7
    REPLY_BOOL = 8
    REPLY_MAP = 9
    REPLY_SET = 10
    REPLY_PUSH = 12
    REPLY_BIGNUM = 13
    REPLY_VERB = 14

    # Buffer sizes (POOL_CLUSTER_ADDR_MAX, POOL_SENTINEL_ADDR_LEN), checked against the
    # header as the status codes.
    CLUSTER_ADDR_MAX = 264
    SENTINEL_ADDR_LEN = 272

    # pool_error_t
    class PoolError < FFI::Struct
      layout :code, :int32,
             :message, [:char, 256]

      def message
        self[:message].to_s.force_encoding(Encoding::UTF_8).scrub
      end
    end

    # pool_reply_t
    class Reply < FFI::Struct
      layout :type, :int32,
             :integer, :int64,
             :dval, :double,
             :len, :size_t,
             :str, :pointer,
             :vtype, [:char, 4],
             :elements, :size_t,
             :element, :pointer
    end

    # pool_stats_t; set :struct_size to Stats.size before pool_stats. The layouts
    # below are checked field by field (names, order, types) against the header.
    class Stats < FFI::Struct
      layout :struct_size, :size_t,
             :hits, :uint64,
             :misses, :uint64,
             :timeouts, :uint64,
             :wait_count, :uint64,
             :unusable, :uint64,
             :wait_duration_ns, :uint64,
             :total_conns, :uint32,
             :idle_conns, :uint32,
             :stale_conns, :uint32,
             :pending_requests, :uint32,
             :dials, :uint64,
             :dial_errors, :uint64,
             :removed_conns, :uint64,
             :evicted_conns, :uint64,
             :waiting, :uint32,
             :dials_in_progress, :uint32,
             :leak_suspects, :uint32,
             :in_use_conns, :uint32,
             :late_returns, :uint64,
             :reset_conns, :uint64
    end

    # pool_leak_t
    class Leak < FFI::Struct
      layout :conn_id, :uint64,
             :held_ms, :int64
    end

    # pool_options_t; always filled by Native.init_options first.
    class Options < FFI::Struct
      layout :struct_size, :size_t,
             :addr, :pointer,
             :dialer, :pointer,
             :dialer_userdata, :pointer,
             :pool_fifo, :bool,
             :pool_size, :int32,
             :min_idle_conns, :int32,
             :max_idle_conns, :int32,
             :max_active_conns, :int32,
             :max_concurrent_dials, :int32,
             :dial_timeout_ms, :int64,
             :pool_timeout_ms, :int64,
             :conn_max_idle_time_ms, :int64,
             :conn_max_lifetime_ms, :int64,
             :conn_max_lifetime_jitter_ms, :int64,
             :dialer_retries, :int32,
             :dialer_retry_backoff_ms, :int64,
             :username, :pointer,
             :password, :pointer,
             :client_name, :pointer,
             :db, :int32,
             :protocol, :int32,
             :read_timeout_ms, :int64,
             :write_timeout_ms, :int64,
             :reaper_interval_ms, :int64,
             :ping_after_idle_ms, :int64,
             :leak_detection_threshold_ms, :int64,
             :health_check_bypass_ms, :int64,
             :overtake_window_ms, :int64,
             :max_reply_bytes, :int64,
             :max_reply_elements, :int64,
             :dialer_userdata_free, :pointer,
             :tls, :bool,
             :tls_ca_file, :pointer,
             :tls_ca_dir, :pointer,
             :tls_cert_file, :pointer,
             :tls_key_file, :pointer,
             :tls_server_name, :pointer,
             :tls_min_version, :int32,
             :tls_insecure_skip_verify, :bool
    end

    # pool_cluster_options_t; always filled by Native.init_options first.
    class ClusterOptions < FFI::Struct
      layout :struct_size, :size_t,
             :seeds, :pointer,
             :seeds_len, :size_t,
             :node, :pointer,
             :max_redirects, :int32,
             :refresh_min_interval_ms, :int64
    end

    # pool_cluster_info_t; set :struct_size to ClusterInfo.size before pool_cluster_info.
    class ClusterInfo < FFI::Struct
      layout :struct_size, :size_t,
             :refreshes, :uint64,
             :refresh_errors, :uint64,
             :moved, :uint64,
             :ask, :uint64,
             :retries, :uint64,
             :nodes, :uint32,
             :masters, :uint32,
             :slots_covered, :uint32,
             :reserved, :uint32
    end

    # pool_cluster_node_t
    class ClusterNode < FFI::Struct
      layout :addr, [:char, CLUSTER_ADDR_MAX],
             :master, :int32,
             :slots, :int32
    end

    # pool_sentinel_options_t; always filled by Native.init_options first.
    class SentinelOptions < FFI::Struct
      layout :struct_size, :size_t,
             :master_name, :pointer,
             :sentinel_addrs, :pointer,
             :sentinel_addrs_len, :size_t,
             :sentinel_username, :pointer,
             :sentinel_password, :pointer,
             :poll_interval_ms, :int64,
             :sentinel_tls, :bool
    end

    # pool_sentinel_stats_t; set :struct_size to SentinelStats.size before
    # pool_sentinel_stats.
    class SentinelStats < FFI::Struct
      layout :struct_size, :size_t,
             :failovers, :uint64,
             :failover_waits, :uint64,
             :switches, :uint64,
             :conns_retired, :uint64,
             :longest_pause_ms, :uint64,
             :in_failover, :uint64
    end

    # --- Cheap calls: never wait, keep the GVL. ---
    attach_function :pool_version, [], :string
    attach_function :pool_status_str, [:int32], :string
    attach_function :pool_cancel_new, [], :pointer
    attach_function :pool_cancel_fire, [:pointer], :void
    attach_function :pool_cancel_free, [:pointer], :void
    attach_function :pool_conn_fd, [:pointer], :int
    # The non-blocking command path (Conn#call under a fiber scheduler): each call
    # only does what the socket allows now.
    attach_function :pool_conn_start, [:pointer, :int, :pointer, :pointer, :int64, :pointer, :pointer], :int32
    attach_function :pool_conn_finish, [:pointer, :pointer, :pointer, :pointer], :int32
    attach_function :pool_conn_wait_ms, [:pointer], :int64
    attach_function :pool_conn_id, [:pointer], :uint64
    attach_function :pool_notify_fd, [:pointer], :int32
    attach_function :pool_leaks, [:pointer, :pointer, :size_t, :pointer, :pointer], :int32
    # The sized initialisers the header's pool_*_options_init macros call: the
    # library writes only `size` bytes (see Native.init_options).
    attach_function :pool_options_init_size, [:pointer, :size_t], :int32
    attach_function :pool_try_get, [:pointer, :pointer], :int32
    attach_function :pool_put, [:pointer, :pointer], :int32
    attach_function :pool_remove, [:pointer, :pointer, :string], :int32
    attach_function :pool_close_conn, [:pointer, :pointer], :int32
    attach_function :pool_len, [:pointer], :int32
    attach_function :pool_idle_len, [:pointer], :int32
    attach_function :pool_stats, [:pointer, :pointer], :int32
    attach_function :pool_close, [:pointer], :int32
    attach_function :pool_free, [:pointer], :void
    attach_function :pool_reply_free, [:pointer], :void
    attach_function :pool_cluster_options_init_size, [:pointer, :size_t], :int32
    attach_function :pool_cluster_slot_node, [:pointer, :int32, :pointer, :size_t], :int32
    attach_function :pool_cluster_key_slot, [:pointer, :size_t], :int32
    attach_function :pool_cluster_put, [:pointer, :pointer], :int32
    attach_function :pool_cluster_remove, [:pointer, :pointer, :string], :int32
    attach_function :pool_cluster_node_pool, [:pointer, :string, :pointer, :pointer], :int32
    attach_function :pool_cluster_conn_node, [:pointer, :pointer, :size_t], :int32
    attach_function :pool_cluster_stats, [:pointer, :string, :pointer], :int32
    attach_function :pool_cluster_info, [:pointer, :pointer], :int32
    attach_function :pool_cluster_nodes, [:pointer, :pointer, :size_t, :pointer], :int32
    attach_function :pool_cluster_close, [:pointer], :int32
    attach_function :pool_cluster_free, [:pointer], :void
    attach_function :pool_sentinel_options_init_size, [:pointer, :size_t], :int32
    attach_function :pool_sentinel_stats, [:pointer, :pointer, :pointer], :int32

    # --- Calls that wait or dial: the GVL is released. ---
    # pool_new / pool_new_url never wait for a dial, but parse, allocate and may start
    # threads: releasing the GVL costs nothing worth keeping it for.
    attach_function :pool_new, [:pointer, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_new_url, [:string, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_get, [:pointer, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_get_ex, [:pointer, :int64, :pointer, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_new_conn, [:pointer, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_conn_command, [:pointer, :int, :pointer, :pointer, :pointer, :pointer], :int32,
                    blocking: true
    attach_function :pool_conn_wait_replicas, [:pointer, :int, :int64, :pointer, :pointer], :int32,
                    blocking: true
    attach_function :pool_cluster_new, [:pointer, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_cluster_new_url, [:string, :pointer, :pointer], :int32, blocking: true
    attach_function :pool_cluster_get, [:pointer, :pointer, :size_t, :int64, :pointer, :pointer, :pointer],
                    :int32, blocking: true
    attach_function :pool_cluster_get_slot, [:pointer, :int32, :int64, :pointer, :pointer, :pointer], :int32,
                    blocking: true
    attach_function :pool_cluster_get_node, [:pointer, :string, :int64, :pointer, :pointer, :pointer], :int32,
                    blocking: true
    attach_function :pool_cluster_refresh, [:pointer, :int64, :pointer], :int32, blocking: true
    # Never contacts the sentinels (the first get does); see pool_new.
    attach_function :pool_sentinel_new, [:pointer, :pointer, :pointer, :pointer], :int32, blocking: true
    # Asks the sentinels when no master address is known yet.
    attach_function :pool_sentinel_master_addr, [:pointer, :pointer, :size_t, :pointer], :int32,
                    blocking: true

    INIT_SIZE = {
      Options => :pool_options_init_size,
      ClusterOptions => :pool_cluster_options_init_size,
      SentinelOptions => :pool_sentinel_options_init_size,
    }.freeze

    # Fills `struct` (a Native::Options, ClusterOptions or SentinelOptions, or a
    # `layout` of the same fields cut short, as a binding built against an older
    # header has) with the library's defaults through its sized initialiser, as
    # the header's pool_*_options_init macros do: only `struct.size` bytes are
    # written, so a newer library never writes past the binding's struct.
    # `init` names the initialiser when `struct` is none of the three classes.
    def self.init_options(struct, init = INIT_SIZE.fetch(struct.class))
      status = public_send(init, struct, struct.size)
      raise RedisPool.error_for(status) unless status == OK

      struct
    end
  end
end
