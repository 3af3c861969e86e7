//! RESP bytes as the stream reader gets them: the frame scan (fed in two
//! pieces, as partial reads come) and the reply walk never panic, and the
//! scan finds the same length however the bytes arrive.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard_bus::redis::resp::{read_reply, FrameScan};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let whole = FrameScan::default().scan(data);
    if let Ok(Some(len)) = whole {
        assert!(len <= data.len());
        let mut scan = FrameScan::default();
        let cut = usize::from(cut) % (data.len() + 1);
        if let Ok(None) = scan.scan(&data[..cut]) {
            assert_eq!(scan.scan(data), Ok(Some(len)));
        }
        let _ = read_reply(Bytes::copy_from_slice(&data[..len]));
    }
    let _ = read_reply(Bytes::copy_from_slice(data));
});
