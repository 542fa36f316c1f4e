//! The [`Transport`] trait: how a node reaches its peers.

use super::client::RpcClient;
use super::rpc::RpcError;
use crate::core::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// How a node reaches its peers: TCP in production ([`RpcClient`]), a
/// seeded in-process network in the simulation.
pub trait Transport<Req, Resp>: Send + Sync + 'static {
    /// Sends `req` to `to` at `addr` and waits at most `timeout` for the answer.
    fn call(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send;
    /// Changes the cluster id stamped on later calls.
    fn set_cluster(&self, cluster: String);
    /// The cluster id stamped on calls.
    fn cluster(&self) -> String;
}

impl<Req, Resp> Transport<Req, Resp> for RpcClient<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    async fn call(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        self.call_with_timeout(to, addr, req, timeout).await
    }

    fn set_cluster(&self, cluster: String) {
        RpcClient::set_cluster(self, cluster);
    }

    fn cluster(&self) -> String {
        RpcClient::cluster(self)
    }
}
