//! The state one node shares between its RPC handlers, its health prober and
//! its library handle. Each field is one small piece with its own module.

use crate::config::MeshConfig;
use crate::dialback::DialBacks;
use crate::handler::Services;
use crate::metrics::Metrics;
use crate::peers::PeerTable;
use crate::validator::RegistryValidator;
use std::sync::{Arc, RwLock};

/// Who this node is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Collector id, unique in the mesh.
    pub id: String,
    /// The address peers dial to reach this node.
    pub address: String,
}

pub(crate) struct Node {
    pub me: Identity,
    pub namespaces: RwLock<Vec<String>>,
    pub services: Services,
    pub peers: PeerTable,
    pub validator: RwLock<Option<Arc<dyn RegistryValidator>>>,
    pub metrics: Metrics,
    pub dialbacks: DialBacks,
    pub config: MeshConfig,
}

impl Node {
    pub fn new(me: Identity, namespaces: Vec<String>, config: MeshConfig) -> Self {
        Self {
            me,
            namespaces: RwLock::new(namespaces),
            services: Services::default(),
            peers: PeerTable::new(&config),
            validator: RwLock::default(),
            metrics: Metrics::default(),
            dialbacks: DialBacks::new(config.max_dialbacks),
            config,
        }
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn validator(&self) -> Option<Arc<dyn RegistryValidator>> {
        self.validator
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
