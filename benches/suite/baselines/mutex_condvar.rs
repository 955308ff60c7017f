//! The Mutex+Condvar pool (redis-plus-plus's ConnectionPool and r2d2's design).

use crate::baselines::connect_all;
use crate::runner::BenchPool;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex};

pub(crate) struct MutexPool {
    pub(crate) idle: Mutex<VecDeque<TcpStream>>,
    pub(crate) cv: Condvar,
}

impl MutexPool {
    pub(crate) fn new(addr: &str, size: usize) -> Self {
        let idle = connect_all(addr, size).collect();
        MutexPool {
            idle: Mutex::new(idle),
            cv: Condvar::new(),
        }
    }
}

impl BenchPool for MutexPool {
    type Conn = TcpStream;
    #[inline]
    fn get(&self) -> TcpStream {
        let mut idle = self.idle.lock().unwrap();
        loop {
            if let Some(s) = idle.pop_back() {
                return s;
            }
            idle = self.cv.wait(idle).unwrap();
        }
    }
    #[inline]
    fn put(&self, s: TcpStream) {
        self.idle.lock().unwrap().push_back(s);
        self.cv.notify_one();
    }
}
