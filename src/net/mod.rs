//! The network edge: the per-core replicas (acceptor, idle.pool, front end, static and
//! recycling stages on one core), and the send pool of responses waiting on slow readers.

pub mod acceptor;
pub mod replica;
pub mod send_pool;
pub mod wake;
