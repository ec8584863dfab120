//! HTTP pieces shared by the management API (`api`) and the incoming
//! webhook routes (`inbound`): the answer envelope and its one error type
//! (`envelope`), where store errors and warp rejections become that error
//! (`errors`), and the one size-capped body reader (`body`). Both HTTP
//! modules depend on this one; it depends on neither.

pub mod body;
pub mod envelope;
pub mod errors;

pub use envelope::ApiError;
