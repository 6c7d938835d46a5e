//! Pollers that play Lambda's event source mappings, calling the real handler code with events
//! serialized as Lambda delivers them.
//!
//! - [`streams`]: DynamoDB Streams -> a function (batch size, batching window, retries,
//!   bisect on error, on-failure destination, iterator age);
//! - [`queue`]: SQS -> a function (long polling, batch size, concurrency, partial batch
//!   responses, failed messages left to the visibility timeout and the redrive policy).

pub mod queue;
pub mod streams;

use std::future::Future;

use futures::future::BoxFuture;

/// A function invocation's failure (the Lambda returned an error).
pub type InvokeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A Lambda function as an event source mapping sees it: an event in, a response or an error out.
pub trait Function<E, R>: Send + Sync + 'static {
    fn invoke(&self, event: E) -> BoxFuture<'_, Result<R, InvokeError>>;
}

struct FnFunction<F>(F);

impl<E, R, F, Fut> Function<E, R> for FnFunction<F>
where
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, InvokeError>> + Send + 'static,
{
    fn invoke(&self, event: E) -> BoxFuture<'_, Result<R, InvokeError>> {
        Box::pin((self.0)(event))
    }
}

/// A [`Function`] from an async closure.
pub fn function<E, R, F, Fut>(f: F) -> impl Function<E, R>
where
    E: 'static,
    R: 'static,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, InvokeError>> + Send + 'static,
{
    FnFunction(f)
}
