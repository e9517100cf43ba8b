//! The network edge: the per-core replicas (acceptor, idle.pool, front end, static and
//! recycling stages on one core), the send pool of responses waiting on slow readers, and the
//! TLS pump of HTTPS connections lent to plug-ins.

pub mod acceptor;
pub mod replica;
pub mod send_pool;
pub mod tls_pump;
pub mod wake;
