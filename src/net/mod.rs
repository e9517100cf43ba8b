//! The network edge: the acceptor and the idle pool of parked connections.

pub mod acceptor;
pub mod idle_pool;
