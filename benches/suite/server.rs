//! redis-server management: a throwaway server on a free loopback port, killed on drop.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) struct Redis {
    pub(crate) child: Child,
    pub(crate) port: u16,
}

impl Redis {
    pub(crate) fn start() -> Result<Redis, String> {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut why = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            if port == 6379 {
                continue;
            }
            let child = Command::new(&program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
            let mut r = Redis { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(st)) = r.child.try_wait() {
                    why = format!("redis-server exited with {st}");
                    break;
                }
                match redis_pid(port) {
                    Ok(pid) if pid == r.child.id() => return Ok(r),
                    Ok(pid) => why = format!("port {port} answered by another redis (pid {pid})"),
                    Err(e) => why = e.to_string(),
                }
                thread::sleep(Duration::from_millis(20));
            }
            drop(r); // kills it
        }
        Err(why)
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PINGs the server on `port` and returns its process id (from INFO server).
pub(crate) fn redis_pid(port: u16) -> io::Result<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line != "+PONG\r\n" {
        return Err(io::Error::other(format!("PING answered {line:?}")));
    }
    line.clear();
    r.read_line(&mut line)?;
    let len: usize = line
        .trim_start_matches('$')
        .trim_end()
        .parse()
        .map_err(|_| io::Error::other("bad INFO reply"))?;
    let mut body = vec![0; len + 2];
    r.read_exact(&mut body)?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no process_id"))
}
