# frozen_string_literal: true

module RedisPool
  # Giving a checked-out conn back, the same for Pool and Cluster: each calls its
  # own native put / remove (pool_put, pool_cluster_put, ...) and hands the status
  # to #given_back; #with of each yields through #yield_then_give_back.
  module GiveBack
    private

    # Raises for a failed put / remove (a double put, a foreign conn), else marks
    # `conn` given back.
    def given_back(conn, status)
      raise RedisPool.error_for(status) unless status == Native::OK

      conn._returned!
      nil
    end

    # Yields `conn` and returns the block's value; the conn goes back unless the
    # block gave it back itself: with #remove when the block raised an error that
    # means the conn may be broken - IOError, ProtocolError, BadConnError - or an
    # exception that is not a StandardError, with #put otherwise.
    def yield_then_give_back(conn)
      broken = nil
      begin
        yield conn
      rescue IOError, ProtocolError, BadConnError => e
        broken = "#{e.class}: #{e.message}"
        raise
      rescue StandardError
        raise
      rescue Exception => e # rubocop:disable Lint/RescueException
        broken = "#{e.class} raised"
        raise
      ensure
        if conn.checked_out?
          broken ? remove(conn, broken) : put(conn)
        end
      end
    end
  end
end
