//! The minimal strict-FIFO hand-off pool: redispool's waiting design and nothing else.

use crate::baselines::connect_all;
use crate::runner::BenchPool;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;

pub(crate) struct FifoPool {
    pub(crate) state: parking_lot::Mutex<FifoState>,
}

pub(crate) struct FifoState {
    pub(crate) idle: Vec<TcpStream>,
    pub(crate) waiters: VecDeque<Arc<FifoWaiter>>,
}

/// One per thread, reused by every wait of that thread (no allocation per wait).
pub(crate) struct FifoWaiter {
    pub(crate) granted: parking_lot::Mutex<Option<TcpStream>>,
    pub(crate) thread: thread::Thread,
}

thread_local! {
    static FIFO_WAITER: Arc<FifoWaiter> = Arc::new(FifoWaiter {
        granted: parking_lot::Mutex::new(None),
        thread: thread::current(),
    });
}

impl FifoPool {
    pub(crate) fn new(addr: &str, size: usize) -> Self {
        let idle = connect_all(addr, size).collect();
        FifoPool {
            state: parking_lot::Mutex::new(FifoState {
                idle,
                waiters: VecDeque::with_capacity(4096),
            }),
        }
    }
}

impl BenchPool for FifoPool {
    type Conn = TcpStream;
    #[inline]
    fn get(&self) -> TcpStream {
        let me = {
            let mut st = self.state.lock();
            if let Some(s) = st.idle.pop() {
                return s;
            }
            let me = FIFO_WAITER.with(Arc::clone);
            st.waiters.push_back(Arc::clone(&me));
            me
        };
        loop {
            if let Some(s) = me.granted.lock().take() {
                return s;
            }
            thread::park();
        }
    }
    #[inline]
    fn put(&self, s: TcpStream) {
        let mut st = self.state.lock();
        match st.waiters.pop_front() {
            Some(w) => {
                drop(st);
                *w.granted.lock() = Some(s);
                w.thread.unpark();
            }
            None => st.idle.push(s),
        }
    }
}
