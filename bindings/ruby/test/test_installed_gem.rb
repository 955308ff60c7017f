# frozen_string_literal: true

# Checks the redispool gem as a user gets it: installed by `gem install` into
# $GEM_HOME and loaded with a plain `require "redispool"`, with the C library
# found by the dynamic loader through its SONAME (no REDISPOOL_LIB). Run by
# tests/ruby_binding.rs after `gem build` and `gem install`:
#
#   GEM_HOME=/tmp/gems LD_LIBRARY_PATH=/dir/with/libredispool.so.0 \
#     REDISPOOL_TEST_REDIS_URL=redis://127.0.0.1:PORT ruby test/test_installed_gem.rb
#
# Optional: REDISPOOL_EXPECT_LICENSE, the gem's expected license.

abort "unset REDISPOOL_LIB: this checks the default library lookup" if ENV["REDISPOOL_LIB"]
abort "set GEM_HOME to the directory the gem was installed into" if ENV["GEM_HOME"].to_s.empty?
abort "set REDISPOOL_TEST_REDIS_URL" if ENV["REDISPOOL_TEST_REDIS_URL"].to_s.empty?

require "minitest/autorun"
require "redispool"

class TestInstalledGem < Minitest::Test
  def gem_home
    File.realpath(ENV.fetch("GEM_HOME"))
  end

  def test_loaded_from_the_installed_gem
    spec = Gem.loaded_specs["redispool"]
    refute_nil spec, "redispool was not activated as a gem"
    assert File.realpath(spec.full_gem_path).start_with?(gem_home + "/"),
           "#{spec.full_gem_path} is not under GEM_HOME #{gem_home}"
    main = $LOADED_FEATURES.find { |f| f.end_with?("/redispool.rb") }
    assert File.realpath(main).start_with?(gem_home + "/"), "redispool.rb loaded from #{main}"
    assert_equal RedisPool::VERSION, spec.version.to_s
    %w[lib/redispool.rb lib/redispool/native.rb lib/redispool/pool.rb lib/redispool/cluster.rb README.md].each do |f|
      assert File.file?(File.join(spec.full_gem_path, f)), "#{f} is not in the installed gem"
    end
    assert_equal 12_739, RedisPool::Cluster.key_slot("123456789"), "the gem's Cluster works"
    assert_equal ["ffi"], spec.runtime_dependencies.map(&:name)
    expected_license = ENV["REDISPOOL_EXPECT_LICENSE"]
    assert_equal [expected_license], spec.licenses if expected_license && !expected_license.empty?
  end

  def test_library_found_by_its_soname
    assert_nil RedisPool::Native::LIBRARY
    assert_equal [RedisPool::Native::SONAME], RedisPool::Native.ffi_libraries.map(&:name)
    # The gem and the C library it loaded come from the same Cargo.toml version.
    assert_equal RedisPool::VERSION, RedisPool.library_version
  end

  def test_pool_works
    pool = RedisPool::Pool.new("#{ENV.fetch("REDISPOOL_TEST_REDIS_URL")}?pool_size=2")
    assert_equal "PONG", pool.with { |conn| conn.call("PING") }
    conn = pool.checkout
    assert_equal "PONG", conn.call("PING")
    pool.checkin
    assert_equal 0, pool.stats.in_use_conns
    assert_equal 1, pool.idle_len
  ensure
    pool&.close
  end
end
