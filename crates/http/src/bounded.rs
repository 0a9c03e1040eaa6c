//! A response body that ends in an error when the request's deadline passes: a
//! streamed answer (the gateway passing on an upstream's) is bounded like the
//! handler that made it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// `inner`, cut off at `deadline`. The timer is set only once the body has to
/// wait: an answer already in memory costs nothing more.
pub struct Bounded {
    inner: Body,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Bounded {
    pub fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the response did not finish before the request's deadline")]
struct DeadlinePassed;

impl HttpBody for Bounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let ready @ Poll::Ready(_) = Pin::new(&mut this.inner).poll_frame(cx) {
            return ready;
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(DeadlinePassed)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;

    #[tokio::test]
    async fn a_body_in_memory_passes_and_a_stalled_stream_is_cut_at_the_deadline() {
        let full = Bounded::new(Body::from("hello"), Instant::now());
        let bytes = full.collect().await.expect("in memory: no wait").to_bytes();
        assert_eq!(&bytes[..], b"hello");

        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tx.try_send(Ok(Bytes::from_static(b"first"))).expect("send");
        let stalled = Bounded::new(
            Body::from_stream(rx),
            Instant::now() + Duration::from_millis(100),
        );
        let started = std::time::Instant::now();
        let result = stalled.collect().await;
        assert!(result.is_err(), "cut off");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(tx);
    }
}
