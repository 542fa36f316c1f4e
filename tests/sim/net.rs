//! A seeded in-process network between simulated nodes: every call is
//! delayed, may be lost or duplicated, is dropped across a partition, and
//! is refused by a dead process. Each request runs the target node's own
//! RPC handler (`Service`) as a task of that node's process, so killing the
//! process aborts it mid-way like a kill -9.

use crate::sim::env::SimEnv;
use dynkv::core::{NodeId, Request, Response};
use dynkv::net::{RpcError, Transport};
use dynkv::node::cluster::ClusterKv;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;

/// A node's RPC handler with its future type erased (the handler's future
/// contains this transport's future, so it must be boxed to name it).
pub type HandlerFn = Arc<
    dyn Fn(NodeId, Request) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// Network conditions and the running processes.
pub struct NetState {
    rng: StdRng,
    pub loss_per_mille: u32,
    pub dup_per_mille: u32,
    pub max_delay_ms: u64,
    /// While set, nodes in different groups cannot talk.
    pub groups: Option<Vec<u8>>,
    /// The running process of each node (None while it is down).
    pub nodes: Vec<Option<Arc<ClusterKv<SimEnv>>>>,
    /// Their RPC handlers.
    pub handlers: Vec<Option<HandlerFn>>,
    /// Bumped at every start, so a killed process's leftovers are refused.
    pub incarnation: Vec<u64>,
    tasks: Vec<Vec<AbortHandle>>,
    pub messages: u64,
    pub dropped: u64,
}

/// The network.
pub struct SimNet {
    pub state: Mutex<NetState>,
}

/// Node `i`'s node-to-node address.
pub fn cluster_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 17_000 + i as u16))
}

/// Node `i`'s name.
pub fn node_name(i: usize) -> NodeId {
    NodeId::new(&format!("n{i}"))
}

impl SimNet {
    pub fn new(seed: u64, nodes: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(NetState {
                rng: StdRng::seed_from_u64(seed),
                loss_per_mille: 0,
                dup_per_mille: 0,
                max_delay_ms: 10,
                groups: None,
                nodes: vec![None; nodes],
                handlers: vec![None; nodes],
                incarnation: vec![0; nodes],
                tasks: vec![Vec::new(); nodes],
                messages: 0,
                dropped: 0,
            }),
        })
    }

    /// Runs `fut` as a task of node `i`'s current process.
    pub fn spawn_on<F>(&self, i: usize, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(fut).abort_handle();
        let mut st = self.state.lock();
        if let Some(tasks) = st.tasks.get_mut(i) {
            if tasks.len() > 256 {
                tasks.retain(|t| !t.is_finished());
            }
            tasks.push(handle);
        }
    }

    /// Kills node `i`'s process: no more calls in or out, its tasks abort.
    pub fn kill(&self, i: usize) -> Option<Arc<ClusterKv<SimEnv>>> {
        let mut st = self.state.lock();
        st.incarnation[i] += 1;
        for t in st.tasks[i].drain(..) {
            t.abort();
        }
        st.handlers[i] = None;
        st.nodes[i].take()
    }

    /// A transport for node `i`'s current process.
    pub fn transport(self: &Arc<Self>, i: usize) -> SimTransport {
        let incarnation = self.state.lock().incarnation[i];
        SimTransport {
            net: self.clone(),
            from: i,
            incarnation,
            cluster: Mutex::new(String::new()),
        }
    }

    /// A random number in `0..n` from the network's seeded generator.
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.state.lock().rng.random_range(0..n)
    }
}

/// One process's handle on the network.
pub struct SimTransport {
    net: Arc<SimNet>,
    from: usize,
    incarnation: u64,
    cluster: Mutex<String>,
}

impl Transport<Request, Response> for SimTransport {
    async fn call(
        &self,
        _to: &NodeId,
        addr: SocketAddr,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let net = self.net.clone();
        let (from, incarnation) = (self.from, self.incarnation);
        let exchange = async move {
            let (target, d1, d2, lose_req, lose_resp, dup) = {
                let mut st = net.state.lock();
                if st.incarnation[from] != incarnation {
                    return Err(RpcError::Io("this process was killed".into()));
                }
                let target = usize::from(addr.port())
                    .checked_sub(17_000)
                    .filter(|t| *t < st.nodes.len())
                    .ok_or_else(|| RpcError::Connect(format!("nothing listens on {addr}")))?;
                st.messages += 1;
                let cut = st
                    .groups
                    .as_ref()
                    .is_some_and(|g| g.get(from) != g.get(target));
                let max = st.max_delay_ms.max(1);
                let d1 = st.rng.random_range(1..=max);
                let d2 = st.rng.random_range(1..=max);
                let loss = st.loss_per_mille;
                let lose_req = cut || st.rng.random_range(0..1000) < loss;
                let lose_resp = st.rng.random_range(0..1000) < loss;
                let dup = st.rng.random_range(0..1000) < st.dup_per_mille;
                if lose_req || lose_resp {
                    st.dropped += 1;
                }
                (target, d1, d2, lose_req, lose_resp, dup)
            };
            if lose_req {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(d1)).await;
            let Some(handler) = net.state.lock().handlers[target].clone() else {
                return Err(RpcError::Connect("connection refused".into()));
            };
            let caller = node_name(from);
            if dup {
                let dup = handler(caller.clone(), req.clone());
                net.spawn_on(target, async move {
                    dup.await;
                });
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let fut = handler(caller, req);
            net.spawn_on(target, async move {
                let _ = tx.send(fut.await);
            });
            let resp = rx
                .await
                .map_err(|_| RpcError::Io("peer process died".into()))?;
            if lose_resp {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(d2)).await;
            Ok(resp)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(RpcError::Timeout))
    }

    fn set_cluster(&self, cluster: String) {
        *self.cluster.lock() = cluster;
    }

    fn cluster(&self) -> String {
        self.cluster.lock().clone()
    }
}
