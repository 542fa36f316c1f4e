//! [`Transport`]: what a node needs from the network to reach its peers, so
//! the cluster logic can run over real TCP ([`RpcClient`]) in production and
//! over a seeded in-process network in the simulation.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::NodeId;

use super::rpc::{RpcClient, RpcError};

/// How a node reaches its peers: TCP in production (`RpcClient`), a seeded in-process network in the simulation.
pub trait Transport<Req, Resp>: Send + Sync + 'static {
    /// Sends `req` to node `to` at `addr` and awaits its response; the whole
    /// call is bounded by `timeout`.
    fn call(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send;

    /// Changes the cluster id stamped on later calls (a joining node learns
    /// it from the seed).
    fn set_cluster(&self, cluster: String);

    /// The cluster id currently stamped on calls.
    fn cluster(&self) -> String;
}

impl<Req, Resp> Transport<Req, Resp> for RpcClient<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    fn call(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send {
        self.call_with_timeout(to, addr, req, timeout)
    }

    fn set_cluster(&self, cluster: String) {
        RpcClient::set_cluster(self, cluster);
    }

    fn cluster(&self) -> String {
        RpcClient::cluster(self)
    }
}
