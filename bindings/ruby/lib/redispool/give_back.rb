# frozen_string_literal: true

module RedisPool
  # Giving a checked-out conn back, and closing, the same for Pool and Cluster:
  # each calls its own native put / remove / close (pool_put, pool_cluster_put,
  # ...) and hands the status to #given_back / #closed_with; #with of each yields
  # through #yield_then_give_back.
  module GiveBack
    # Whether #close was called on this object.
    def closed?
      @closed
    end

    private

    # Records a #close and raises for a failed one (closing twice is no error).
    def closed_with(status)
      @closed = true
      raise RedisPool.error_for(status) unless status == Native::OK || status == Native::ERR_CLOSED

      nil
    end

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
