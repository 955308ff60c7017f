//! The pipeline reader over a hostile server: byte 0 gives the number of commands (low 6
//! bits, plus 1), RESP3 (bit 6) and kept pushes (bit 7); the rest (at most 64 KiB) is what
//! the server sends before it closes. `redispool::fuzzing::pipeline_over_stream` runs the
//! pipeline and asserts the counts: never more replies than commands, all of them when the
//! pipeline succeeds, and a failure says how many came; every reply also goes through the
//! subscriber's message decoder. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let stream = &rest[..rest.len().min(64 * 1024)];
    let ncmds = usize::from(head & 0x3f) + 1;
    redispool::fuzzing::pipeline_over_stream(stream, ncmds, head & 0x40 != 0, head & 0x80 != 0);
});
