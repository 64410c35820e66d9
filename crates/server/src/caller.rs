//! Who is calling, from the request: a bearer token, a session cookie, or nobody.

use crate::state::Layers;
use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use chizu_access::{Caller, LayerView, View};
use chizu_store::LayerSource;
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "chizu_session";

/// The caller, the layers served and the caller's view of them, decided
/// once per request from one generation of the layer set; every handler
/// that produces output takes this value and pairs layers with their views
/// only through it.
pub struct Ctx {
    pub caller: Caller,
    pub view: View,
    layers: Arc<Layers>,
}

impl Ctx {
    /// The layer set this request is answered from (the view's generation).
    pub fn layers(&self) -> &Arc<Layers> {
        &self.layers
    }

    /// Every layer the caller may see, with its view, in id order, owned
    /// (for work off the async runtime).
    pub fn visible_owned(&self) -> Vec<(Arc<dyn LayerSource>, LayerView)> {
        self.visible()
            .map(|(i, v)| (i.clone(), v.clone()))
            .collect()
    }

    /// Every layer the caller may see, with its view, in id order.
    pub fn visible(&self) -> impl Iterator<Item = (&Arc<dyn LayerSource>, &LayerView)> {
        (self.view.layers()).filter_map(|v| self.layers.get(&v.id).map(|index| (index, v)))
    }

    /// One layer and the caller's view of it; `None` is the same for a
    /// hidden layer as for one that does not exist.
    pub fn layer(&self, id: &str) -> Option<(&Arc<dyn LayerSource>, &LayerView)> {
        self.layers.get(id).zip(self.view.layer(id))
    }

    /// Whether this view is the anonymous one (responses may be cached publicly).
    pub fn is_anonymous(&self) -> bool {
        self.caller.user.is_none() && self.caller.roles.len() == 1
    }
}

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = caller_of(&parts.headers, state).await?;
        let (layers, view) = state.layers_and_view(&caller);
        Ok(Ctx {
            caller,
            view,
            layers,
        })
    }
}

async fn caller_of(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        // A credential that was sent but does not work is an error, never a
        // silent downgrade to the public view: scripts must notice.
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or_else(unauthorized)?;
        let user = state
            .auth
            .token_user(token)
            .await
            .map_err(|e| ApiError::internal("token lookup", e))?
            .ok_or_else(unauthorized)?;
        return Ok(Caller::user(&user.name, user.roles));
    }
    if let Some(secret) = session_cookie(headers) {
        // An unknown, expired or tampered session cookie is an anonymous caller.
        if let Some(user) = state
            .auth
            .session_user(&secret)
            .await
            .map_err(|e| ApiError::internal("session lookup", e))?
        {
            return Ok(Caller::user(&user.name, user.roles));
        }
    }
    Ok(Caller::anonymous())
}

fn unauthorized() -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        title: "Unauthorized",
        code: Some("token_invalid"),
        detail: "the API token is not valid (unknown, expired or revoked)".into(),
    }
}
