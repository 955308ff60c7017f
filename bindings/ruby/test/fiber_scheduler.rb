# frozen_string_literal: true

# A minimal Fiber::Scheduler (Ruby's own interface, no gem) for the tests: IO waits
# and sleeps park the fiber and an IO.select loop resumes it. Enough to show that a
# fiber waiting in the bindings yields to the others instead of blocking the thread.
class TestFiberScheduler
  def initialize
    @readable = {}
    @writable = {}
    @waiting = {} # fiber => wake-up time
    @ready = []
    @blocked = 0
    @lock = Mutex.new
    @urgent_r, @urgent_w = IO.pipe
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def fiber(&block)
    f = Fiber.new(blocking: false, &block)
    f.resume
    f
  end

  # Several fibers may wait for one IO (fibers waiting for a conn of one pool all
  # wait for its notify IO): each IO keeps a list of its fibers.
  def io_wait(io, events, timeout)
    fiber = Fiber.current
    (@readable[io] ||= []) << fiber if (events & IO::READABLE).positive?
    (@writable[io] ||= []) << fiber if (events & IO::WRITABLE).positive?
    @waiting[fiber] = now + timeout if timeout
    Fiber.yield
  ensure
    [@readable, @writable].each do |set|
      next unless set[io]

      set[io].delete(fiber)
      set.delete(io) if set[io].empty?
    end
    @waiting.delete(fiber)
  end

  def kernel_sleep(duration = nil)
    fiber = Fiber.current
    @waiting[fiber] = now + (duration || 0)
    Fiber.yield
  ensure
    @waiting.delete(fiber)
  end

  def block(_blocker, timeout = nil)
    fiber = Fiber.current
    @waiting[fiber] = now + timeout if timeout
    @lock.synchronize { @blocked += 1 }
    Fiber.yield
  ensure
    @waiting.delete(fiber)
    @lock.synchronize { @blocked -= 1 }
  end

  def unblock(_blocker, fiber)
    @lock.synchronize { @ready << fiber }
    @urgent_w.write_nonblock(".", exception: false)
  end


  def close
    run
    @urgent_r.close
    @urgent_w.close
  end

  def run
    while @readable.any? || @writable.any? || @waiting.any? || @blocked.positive? || @ready.any?
      timeout = @waiting.values.min
      timeout = [timeout - now, 0].max if timeout
      r, w = IO.select([*@readable.keys, @urgent_r], @writable.keys, [], timeout)
      @urgent_r.read_nonblock(64, exception: false) if r&.include?(@urgent_r)
      resume = []
      r&.each { |io| resume.concat(@readable[io]) if @readable[io] }
      w&.each { |io| resume.concat(@writable[io]) if @writable[io] }
      t = now
      @waiting.each { |f, at| resume << f if at <= t }
      @lock.synchronize { resume.concat(@ready); @ready.clear }
      resume.uniq.each { |f| f.resume if f.alive? }
    end
  end
end
