//! Frame I/O over a byte stream, shared by client and server.
//!
//! Written against the tokio-util codec's `Decoder`/`Encoder` directly rather
//! than `Framed`, because driving `Framed` needs `futures` (`StreamExt`,
//! `SinkExt`), which this crate does not depend on.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::frame;

/// Stop batching queued frames into one write beyond this many bytes, so one
/// write call does not hold an unbounded buffer.
const WRITE_BATCH_BYTES: usize = 1 << 20;

/// Reads length-delimited frames from `R`.
pub struct FrameReader<R> {
    inner: R,
    codec: LengthDelimitedCodec,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            codec: frame::codec(),
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// Next frame payload, `Ok(None)` on a clean end of stream.
    ///
    /// Cancel-safe: partial input stays in the buffer (and the codec keeps the
    /// length it already parsed), so this can sit in a `select!`.
    pub async fn next(&mut self) -> io::Result<Option<BytesMut>> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended inside a frame",
                    ))
                };
            }
        }
    }
}

/// Writes length-delimited frames to `W`, batching several per write.
pub struct FrameWriter<W> {
    inner: W,
    codec: LengthDelimitedCodec,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            codec: frame::codec(),
            buf: BytesMut::new(),
        }
    }

    /// Queues one frame payload in the local buffer.
    pub fn push(&mut self, payload: Bytes) -> io::Result<()> {
        self.codec.encode(payload, &mut self.buf)
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf).await?;
        self.buf.clear();
        self.inner.flush().await
    }
}

/// The one writer task of a connection: sends every payload from `rx` until
/// the channel closes (after draining it), a write fails, or `closed` fires.
/// Cancels `closed` on the way out so the connection's reader stops too.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
) {
    let mut writer = FrameWriter::new(wr);
    loop {
        let first = tokio::select! {
            _ = closed.cancelled() => break,
            next = rx.recv() => match next {
                Some(payload) => payload,
                None => break,
            },
        };
        let mut queued = writer.push(first);
        // Whatever else is already waiting goes out in the same write.
        while queued.is_ok() && writer.buffered() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(payload) => queued = writer.push(payload),
                Err(_) => break,
            }
        }
        let result = match queued {
            Ok(()) => tokio::select! {
                _ = closed.cancelled() => break,
                r = writer.flush() => r,
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "rpc connection write failed");
            break;
        }
    }
    closed.cancel();
}

/// Aborts a spawned task when dropped, so a connection's helper tasks never
/// outlive it (tokio-util's version needs its `rt` feature, not enabled here).
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
