//! Node-to-node RPC over TCP, generic over the message types so this layer
//! does not depend on the cluster's message enums.
//!
//! - [`frame`]: wire format (length-delimited postcard [`Envelope`]s).
//! - [`stream`]: reading and writing frames on a socket.
//! - [`rpc`]: the shared vocabulary ([`Handler`], [`RpcConfig`], [`RpcError`],
//!   [`Blocklist`]), re-exporting [`serve`] and [`RpcClient`].
//! - `server`: [`serve`], the accept loop and per-connection request handling.
//! - `client`: [`RpcClient`], one multiplexed connection per peer.
//! - [`transport`]: the [`Transport`] trait, how a node reaches its peers
//!   ([`RpcClient`] implements it; the simulation has its own).
//!
//! - [`auth`]: the handshake that opens every connection: both ends prove
//!   they hold the cluster secret before any envelope is exchanged.
//!
//! A node runs one [`serve`] and one [`RpcClient`] sharing one
//! `Arc<Blocklist>`:
//!
//! ```no_run
//! use std::sync::Arc;
//! use dynkv::core::{ClusterSecret, NodeId};
//! use dynkv::net::{Blocklist, Handler, RpcClient, RpcConfig, serve};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Doubler;
//! impl Handler<u64, u64> for Doubler {
//!     async fn handle(&self, _from: NodeId, req: u64) -> u64 {
//!         req * 2
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = ClusterSecret::new("a secret only members know")?;
//! let config = RpcConfig::new("cluster-1", NodeId::new("a"), &secret);
//! let blocklist = Arc::new(Blocklist::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let stop = CancellationToken::new();
//! tokio::spawn(serve(listener, config.clone(), Arc::new(Doubler), blocklist.clone(), stop.clone()));
//!
//! let client: RpcClient<u64, u64> = RpcClient::new(config, blocklist);
//! assert_eq!(client.call(&NodeId::new("a"), addr, 21).await?, 42);
//! stop.cancel();
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod client;
pub mod frame;
pub mod rpc;
mod server;
pub mod stream;
pub mod transport;

pub use frame::{Envelope, MAX_FRAME_LEN, MAX_VALUE_LEN, PROTOCOL_VERSION, WireResponse};
pub use rpc::{Blocklist, Handler, RpcClient, RpcConfig, RpcError, serve};
pub use transport::Transport;
