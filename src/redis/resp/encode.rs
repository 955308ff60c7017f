//! Encoding commands: the RESP array of bulk strings a Redis command is sent as.

/// Appends one command, `*N\r\n$len\r\narg\r\n…`, to `out`. Binary safe.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    // One reservation for the whole command: the payload plus a generous bound on the framing
    // ("$" + up to 20 digits + 2 CRLFs per argument).
    let payload: usize = args.iter().map(|a| a.len()).sum();
    out.reserve(payload + 25 * args.len() + 24);
    push_header(out, b'*', args.len());
    for arg in args {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `<kind><n>\r\n`, formatting `n` in a stack buffer (no `format!`, no allocation).
fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    let mut digits = [0u8; 24];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(kind);
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_command_is_byte_exact() {
        let mut out = b"prefix".to_vec();
        encode_command(&mut out, &[b"SET", b"k\r\n\0", b""]);
        assert_eq!(out, b"prefix*3\r\n$3\r\nSET\r\n$4\r\nk\r\n\0\r\n$0\r\n\r\n");

        let big = vec![b'x'; 1_234_567];
        let mut out = Vec::new();
        encode_command(&mut out, &[b"GET", &big]);
        let mut want = b"*2\r\n$3\r\nGET\r\n$1234567\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\r\n");
        assert_eq!(out, want);

        let mut out = Vec::new();
        let args: Vec<&[u8]> = vec![b"a"; 10];
        encode_command(&mut out, &args);
        assert!(out.starts_with(b"*10\r\n$1\r\na\r\n"));
        assert_eq!(out.len(), 5 + 10 * 7);

        let mut out = Vec::new();
        encode_command(&mut out, &[]);
        assert_eq!(out, b"*0\r\n");
    }
}
