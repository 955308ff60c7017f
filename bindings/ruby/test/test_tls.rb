# frozen_string_literal: true

# RedisPool::Pool over TLS, against a redis-server started with --tls-port and
# certificates made at test time. tests/ruby_binding.rs starts it and runs this
# file with:
#
#   REDISPOOL_TEST_TLS_ADDR   "127.0.0.1:port" of the TLS port
#   REDISPOOL_TEST_TLS_CERTS  the directory of the test certificates (ca.pem, ...)
#
# Skipped without them (the Rust harness fails on any skip).

require "minitest/autorun"
require "uri"
require "redispool"

class TestTLS < Minitest::Test
  def setup
    @addr = ENV["REDISPOOL_TEST_TLS_ADDR"].to_s
    @certs = ENV["REDISPOOL_TEST_TLS_CERTS"].to_s
    skip "REDISPOOL_TEST_TLS_ADDR / REDISPOOL_TEST_TLS_CERTS not set" if @addr.empty? || @certs.empty?
    @ca = File.join(@certs, "ca.pem")
  end

  def round_trip(pool)
    pool.with do |conn|
      assert_equal "OK", conn.call("SET", "rb-tls", "over tls")
      assert_equal "over tls", conn.call("GET", "rb-tls")
    end
  ensure
    pool.close
  end

  def test_rediss_url
    round_trip(RedisPool::Pool.new("rediss://#{@addr}/?tls_ca_file=#{URI.encode_www_form_component(@ca)}"))
  end

  def test_tls_options
    round_trip(RedisPool::Pool.new(addr: @addr, tls: true, tls_ca_file: @ca, tls_min_version: 12))
  end

  def test_unknown_ca_is_a_tls_error
    pool = RedisPool::Pool.new(addr: @addr, tls: true, tls_ca_file: File.join(@certs, "other-ca.pem"),
                               dialer_retries: 1)
    err = assert_raises(RedisPool::TLSError) { pool.get }
    assert_includes err.message, "unknown issuer"
  ensure
    pool&.close
  end

  def test_mismatched_key_is_refused_by_new
    err = assert_raises(RedisPool::InvalidArgumentError) do
      RedisPool::Pool.new(addr: @addr, tls: true, tls_ca_file: @ca,
                          tls_cert_file: File.join(@certs, "client.pem"),
                          tls_key_file: File.join(@certs, "server.key"))
    end
    assert_includes err.message, "does not match"
  end

  def expect_message(sub, type)
    m = sub.next_message(10)
    refute_nil m, "no #{type} message"
    assert_equal type, m.type, m.inspect
    m
  end

  # A subscriber on a TLS pool: a message far larger than a TLS record and a small
  # one, ping, and after CLIENT KILL a new TLS session that carries the channel again.
  def test_subscriber_over_tls
    pool = RedisPool::Pool.new(addr: @addr, tls: true, tls_ca_file: @ca)
    sub = pool.subscriber
    sub.subscribe("rb:tls:news")
    assert_equal "rb:tls:news", expect_message(sub, :subscribe).channel
    big = ("0123456789abcdef" * 12_500).b # 200 kB: 13 TLS records
    pool.with do |c|
      assert_equal 1, c.call("PUBLISH", "rb:tls:news", big)
      assert_equal 1, c.call("PUBLISH", "rb:tls:news", "small")
    end
    assert_equal big, expect_message(sub, :message).payload
    assert_equal "small", expect_message(sub, :message).payload
    sub.ping(10)
    pool.with { |c| assert_equal 1, c.call("CLIENT", "KILL", "TYPE", "pubsub") }
    assert_equal 1, expect_message(sub, :resubscribed).count
    expect_message(sub, :subscribe)
    pool.with { |c| assert_equal 1, c.call("PUBLISH", "rb:tls:news", "again") }
    assert_equal "again", expect_message(sub, :message).payload
  ensure
    sub&.close
    pool&.close
  end
end
