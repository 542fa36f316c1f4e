//! One memcached client connection: decode, run, and answer a pipeline
//! of commands with one write per batch.

use super::codec::{Frame, TextCodec};
use super::ops::{self, Flow, Session};
use super::state::MemcacheState;
use crate::kv::Kv;
use bytes::{BufMut, BytesMut};
use futures::{FutureExt as _, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Replies held back for a pipeline are written once they reach this size.
const FLUSH_AT: usize = 64 * 1024;

/// Serves `stream` until the client leaves, sends `quit` or garbage that
/// cannot be framed, or `stop` fires.
pub async fn serve<K: Kv + 'static>(
    kv: Arc<K>,
    state: Arc<MemcacheState>,
    stream: TcpStream,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, TextCodec::new(state.max_item));
    let mut session = Session {
        authenticated: state.password.is_none(),
        forwarded: false,
    };
    let mut out = BytesMut::with_capacity(4096);
    loop {
        // Answer everything already read before waiting for more, so a
        // pipeline gets one write and a lone request no delay.
        let next = match frames.next().now_or_never() {
            Some(next) => next,
            None => {
                if !flush(&mut write, &mut out, &state).await {
                    return;
                }
                tokio::select! {
                    next = frames.next() => next,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let close = match next {
            None | Some(Err(_)) => true,
            Some(Ok(Frame::Command(cmd))) => {
                ops::run(&kv, &state, &mut session, cmd, &mut out).await == Flow::Close
            }
            Some(Ok(Frame::Refused(reply))) => {
                out.put_slice(reply.as_bytes());
                out.put_slice(b"\r\n");
                false
            }
            Some(Ok(Frame::Fatal(reply))) => {
                out.put_slice(reply.as_bytes());
                out.put_slice(b"\r\n");
                true
            }
        };
        if close {
            flush(&mut write, &mut out, &state).await;
            let _ = write.shutdown().await;
            return;
        }
        if out.len() >= FLUSH_AT && !flush(&mut write, &mut out, &state).await {
            return;
        }
    }
}

async fn flush(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    out: &mut BytesMut,
    state: &MemcacheState,
) -> bool {
    if out.is_empty() {
        return true;
    }
    state
        .stats
        .bytes_written
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    let ok = write.write_all(out).await.is_ok();
    out.clear();
    ok
}
