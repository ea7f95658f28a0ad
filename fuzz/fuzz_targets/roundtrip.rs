//! Any message the fuzzer builds survives the wire: `decode(encode(m)) == m` when `m` is valid,
//! with the encoding fed to a `Reader` in two pieces cut anywhere, and re-encoding the decoded
//! message gives the same bytes. A message `validate` refuses is refused by `decode` with the
//! same error (except text with characters XML cannot carry, which the writer replaces).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmlwire::protocol::{decode, Message, Problem};
use xmlwire::{Limits, Reader};

fuzz_target!(|input: (Message<'_>, usize)| {
    let (message, cut) = input;
    let mut bytes = Vec::new();
    message.encode(&mut bytes);

    let cut = cut % (bytes.len() + 1);
    let mut reader = Reader::new(Limits::DEFAULT);
    reader.feed(&bytes[..cut]).expect("first piece");
    if cut < bytes.len() {
        let early = reader
            .next_message()
            .expect("a prefix of a message is no error");
        assert!(early.is_none(), "a message ended before its last byte");
    }
    reader.feed(&bytes[cut..]).expect("second piece");
    let frame = reader
        .next_message()
        .expect("encode writes well-formed XML")
        .expect("encode writes one whole message");
    assert_eq!(frame.bytes, &bytes[..], "the frame is the whole encoding");

    let decoded = decode(&frame);
    match message.validate() {
        Ok(()) => {
            assert_eq!(decoded.as_ref(), Ok(&message));
            let mut again = Vec::new();
            if let Ok(decoded) = &decoded {
                decoded.encode(&mut again);
            }
            assert_eq!(
                again, bytes,
                "the decoded message encodes back to the same bytes"
            );
        }
        // The writer replaced the characters; what is left may decode or not.
        Err(error) if error.problem == Problem::BadCharacter => {}
        Err(error) => assert_eq!(decoded, Err(error)),
    }
    assert!(matches!(reader.next_message(), Ok(None)));
    assert!(reader.finish().is_ok());
});
