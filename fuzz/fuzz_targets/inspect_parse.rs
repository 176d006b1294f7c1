//! Arbitrary bytes into inspect's pure parser: splitting a message into its MIME tree,
//! summarising, decoding headers and the text body, and decoding attachments must never
//! panic, overflow the stack or loop, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtool::inspect::parse::ParsedMessage;

fuzz_target!(|data: &[u8]| {
    let parsed = ParsedMessage::parse(data);
    let summary = parsed.summary();
    assert!(summary.parts.len() <= mailtool::inspect::parse::MAX_PARTS);
    let _ = parsed.headers();
    let _ = parsed.text_body();
    for (_part, bytes) in parsed.attachments() {
        std::hint::black_box(bytes.len());
    }
});
