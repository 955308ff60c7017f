//! Admin queries to a test's redis-server with whole replies (`RedisServer::command` keeps
//! only the first line): INFO fields, CLIENT LIST, CLIENT KILL. An `Admin` is one
//! persistent connection, so counting clients never sees the admin's own earlier
//! connections still being torn down by the server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::RedisServer;

/// One admin connection to a test's redis-server.
pub struct Admin {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Admin {
    /// Connects (and authenticates when the server has a password).
    pub fn connect(server: &RedisServer) -> Admin {
        let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("admin connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut admin = Admin { stream, reader };
        if let Some(pw) = server.password() {
            assert_eq!(admin.query(&["AUTH", pw]), "OK");
        }
        admin
    }

    /// Sends one command and returns the reply: the text of a simple string, error (with
    /// its `-`), integer or bulk string. Arrays are not supported.
    pub fn query(&mut self, args: &[&str]) -> String {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req += &format!("${}\r\n{a}\r\n", a.len());
        }
        self.stream.write_all(req.as_bytes()).expect("admin write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("admin read");
        let line = line.trim_end_matches("\r\n");
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => line[1..].to_string(),
            Some(b'-') => line.to_string(),
            Some(b'$') => {
                let len: usize = line[1..].parse().expect("bulk length");
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body).expect("admin read bulk");
                body.truncate(len);
                String::from_utf8_lossy(&body).into_owned()
            }
            _ => panic!("unsupported reply to {args:?}: {line:?}"),
        }
    }

    /// The local port of this connection, to tell it from the pool's sockets.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local_addr").port()
    }

    /// A numeric field of `INFO section`, e.g. `info_u64("clients", "connected_clients")`.
    pub fn info_u64(&mut self, section: &str, field: &str) -> u64 {
        let info = self.query(&["INFO", section]);
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO {section} has no {field}:\n{info}"))
    }

    /// Clients connected other than this admin connection.
    pub fn other_clients(&mut self) -> u64 {
        self.info_u64("clients", "connected_clients") - 1
    }

    /// The ids of the clients named `name` (CLIENT LIST).
    pub fn client_ids_named(&mut self, name: &str) -> Vec<u64> {
        let needle = format!(" name={name} ");
        self.query(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect()
    }

    /// CLIENT KILL ID for each client named `name`; returns how many the server killed.
    pub fn kill_clients_named(&mut self, name: &str) -> u64 {
        let mut killed = 0;
        for id in self.client_ids_named(name) {
            let n = self.query(&["CLIENT", "KILL", "ID", &id.to_string()]);
            // ":1", or an error when the client went away meanwhile.
            killed += n.parse::<u64>().unwrap_or(0);
        }
        killed
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl RedisServer {
    /// A new admin connection to this server.
    pub fn admin(&self) -> Admin {
        Admin::connect(self)
    }
}
