//! Browser sessions. (Being built: see the README's status section.)

use actix_web::HttpRequest;

use crate::forward_auth::decide::Principal;

/// The signed-in user of a request, from its session cookie, unless revoked.
/// Makes no network call: the gate's hot path depends on it.
pub fn principal(_req: &HttpRequest) -> Option<Principal> {
    None
}
