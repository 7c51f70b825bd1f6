//! The HTTP surface: routes a request path to discovery, the admin endpoints or a
//! resource verb (get, list, watch, create, update, patch, apply, delete), and renders
//! results and failures as the real API server does.

use super::State;
use super::admission::{self, Admission, Attempt, Operation};
use super::apply::{self, ApplyRequest, Scope};
use super::authn::UserInfo;
use super::authz::{self, AuthorizationMode};
use super::discovery::ResourceType;
use super::faults::{FaultPlan, Faults};
use super::journal::Request as JournalRequest;
use super::jsonpath;
use super::patch;
use super::selector::Selector;
use super::status::ApiError;
use super::store::{ChangeKind, Propagation, Store, now_rfc3339, with_version};
use super::table::{self, IncludeObject};
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Params = HashMap<String, String>;

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// The one entry point: every request comes through here, and all but the admin ones
/// into the journal.
pub async fn serve(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: Bytes,
) -> Response {
    let arrived = chrono::Utc::now();
    if uri.path().starts_with("/testkit/") {
        return answer(&state, method, &uri, headers, &body, &UserInfo::admin()).await;
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // A verified client certificate wins over a token, as the x509 authenticator comes
    // first in kube-apiserver.
    let certificate_user = extensions
        .get::<axum::extract::ConnectInfo<super::tls::Peer>>()
        .and_then(|peer| peer.0.certificate_user.clone());
    let user = certificate_user.or_else(|| {
        state
            .tokens
            .lock()
            .expect("token lock poisoned")
            .authenticate(authorization)
            .ok()
    });
    let response = match &user {
        Some(user) => answer(&state, method.clone(), &uri, headers, &body, user).await,
        None => unauthorized(),
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    state
        .journal
        .lock()
        .expect("journal lock poisoned")
        .record(JournalRequest {
            time: arrived,
            method: method.as_str(),
            path,
            status: response.status().as_u16(),
            user: user.as_ref().map(|u| u.username.as_str()),
            body: &body,
        });
    response
}

/// The real server's answer to missing or unknown credentials: the same for both.
fn unauthorized() -> Response {
    error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"))
}

/// Mints a ServiceAccount token (see [`super::ApiServer::service_account_token`]).
pub fn mint_service_account_token(state: &State, namespace: &str, name: &str) -> String {
    let (uid, fresh) = {
        let mut store = state.store.lock().expect("store lock poisoned");
        let rt = store
            .catalogue
            .get("", "v1", "serviceaccounts")
            .cloned()
            .expect("serviceaccounts are built in");
        let uid = store
            .get(&rt, namespace, name)
            .ok()
            .and_then(|sa| sa["metadata"]["uid"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (uid, store.fresh_id())
    };
    let token = format!("sa.{namespace}.{name}.{}", fresh.replace('-', ""));
    state.tokens.lock().expect("token lock poisoned").insert(
        token.clone(),
        UserInfo::service_account(namespace, name, &uid),
    );
    token
}

async fn answer(
    state: &Arc<State>,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: &Bytes,
    user: &UserInfo,
) -> Response {
    let state = Arc::clone(state);
    let body = body.clone();
    let path = uri.path().trim_end_matches('/').to_string();
    let params: Params = Query::<Params>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    if let Some(admin) = path.strip_prefix("/testkit/") {
        return serve_admin(&state, &method, admin, &params, &body);
    }
    let attributes = authz::request_attributes(method.as_str(), uri.path(), &params);
    if let Err(e) = authorize(&state, user, &attributes) {
        return error_response(&e);
    }
    match path.as_str() {
        "/version" => return json_response(200, &version()),
        "/healthz" | "/livez" | "/readyz" => return (StatusCode::OK, "ok").into_response(),
        "/api" => {
            let store = state.store.lock().expect("store lock poisoned");
            return json_response(200, &store.catalogue.api_versions(&state.address));
        }
        "/apis" => {
            let store = state.store.lock().expect("store lock poisoned");
            return json_response(200, &store.catalogue.group_list());
        }
        "/openapi/v3" => {
            let store = state.store.lock().expect("store lock poisoned");
            return json_response(200, &store.catalogue.openapi_v3_root());
        }
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        let store = state.store.lock().expect("store lock poisoned");
        let doc = match gv.split('/').collect::<Vec<_>>().as_slice() {
            ["api", version] => store.catalogue.openapi_v3_group("", version),
            ["apis", group, version] => store.catalogue.openapi_v3_group(group, version),
            _ => None,
        };
        return match doc {
            Some(d) => json_response(200, &d),
            None => not_served(&path),
        };
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group] => {
            let store = state.store.lock().expect("store lock poisoned");
            return match store.catalogue.group(group) {
                Some(g) => json_response(200, &g),
                None => not_served(&path),
            };
        }
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return not_served(&path),
    };
    if rest.is_empty() {
        let store = state.store.lock().expect("store lock poisoned");
        return match store.catalogue.resource_list(group, version) {
            Some(list) => json_response(200, &list),
            None => not_served(&path),
        };
    }
    let full = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(&path)
        .to_string();
    let injection = state
        .faults
        .lock()
        .expect("faults lock poisoned")
        .decide(&full);
    if !injection.delay.is_zero() {
        tokio::time::sleep(injection.delay).await;
    }
    if let Some(code) = injection.fail_with {
        return injected_failure(code, &path);
    }
    let target = {
        let store = state.store.lock().expect("store lock poisoned");
        match resolve(&store, group, version, rest) {
            Some(t) => t,
            None => return not_served(&path),
        }
    };
    let request = Request {
        state: &state,
        target,
        attributes,
        params,
        headers: &headers,
        body: &body,
        user,
        warnings: RefCell::default(),
    };
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let verb = match (&method, request.target.name.is_some()) {
        (&Method::GET, false) if request.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    };
    state.count_request(agent, verb);
    if request.target.rt.review {
        return match method {
            Method::POST => request
                .review()
                .map_or_else(|e| error_response(&e), |(c, b)| json_response(c, &b)),
            _ => error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                format!("the server does not allow {method} on {path}: reviews are only created"),
            )),
        };
    }
    let result = match (method.clone(), request.target.name.is_some()) {
        (Method::POST, true) if request.target.subresource.as_deref() == Some("token") => {
            request.token_request()
        }
        (Method::GET, false) if request.flag("watch") => return watch(request),
        (Method::GET, false) => return request.list().unwrap_or_else(|e| error_response(&e)),
        (Method::GET, true) => request.get(),
        (Method::POST, false) => request.create(),
        (Method::PUT, true) => request.update(),
        (Method::PATCH, true) => request.patch(),
        (Method::DELETE, true) => request.delete(),
        (Method::DELETE, false) => request.delete_collection(),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow {method} on {path}"),
        )),
    };
    let mut response = match result {
        Ok((code, body)) => json_response(code, &body),
        Err(e) => error_response(&e),
    };
    for warning in request.warnings.borrow().iter() {
        if let Ok(value) = header::HeaderValue::from_str(&warning_header(warning)) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// An RFC 7234 `Warning` header as kube-apiserver writes them: code 299, no agent, the
/// text quoted (kubectl prints it as `Warning: TEXT`).
fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

/// The configured authorizer's answer: a 403 with the real server's message, or nothing.
fn authorize(
    state: &State,
    user: &UserInfo,
    attributes: &authz::Attributes,
) -> Result<(), ApiError> {
    if state.config.authorization_mode == AuthorizationMode::AlwaysAllow {
        return Ok(());
    }
    let policy = state
        .store
        .lock()
        .expect("store lock poisoned")
        .rbac_policy();
    if policy.authorize(user, attributes).allowed {
        Ok(())
    } else {
        Err(authz::forbidden(user, attributes))
    }
}

fn not_served(path: &str) -> Response {
    tracing::info!(
        path,
        "request for a path the test API server does not serve"
    );
    error_response(&ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}

fn injected_failure(code: u16, path: &str) -> Response {
    let (reason, message) = match code {
        429 => (
            "TooManyRequests",
            "too many requests, please try again later (injected fault)".to_string(),
        ),
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {path}: the object has been modified; please apply your changes to the latest version and try again (injected fault)"
            ),
        ),
        _ => (
            "InternalError",
            "Internal error occurred: injected fault".to_string(),
        ),
    };
    let mut response = error_response(&ApiError::new(code, reason, message));
    if code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

fn version() -> Value {
    json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.0-fife-testkit", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64" })
}

fn serve_admin(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    params: &Params,
    body: &Bytes,
) -> Response {
    let since = params
        .get("since")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    match (method, path) {
        (&Method::PUT | &Method::POST, "faults") => match serde_json::from_slice::<FaultPlan>(body) {
            Ok(plan) => {
                *state.faults.lock().expect("faults lock poisoned") = Faults::new(plan);
                (StatusCode::OK, "faults set\n").into_response()
            }
            Err(e) => (StatusCode::BAD_REQUEST, format!("the fault plan is not valid JSON: {e}\n")).into_response(),
        },
        (&Method::GET, "faults") => {
            let plan = state.faults.lock().expect("faults lock poisoned").plan.clone();
            json_response(200, &serde_json::to_value(plan).unwrap_or_default())
        }
        (&Method::POST, "drop-watches") => {
            state.drop_watches();
            (StatusCode::OK, "watches dropped\n").into_response()
        }
        (&Method::GET, "requests") => {
            let counts = state.requests.lock().expect("request counter lock poisoned");
            json_response(200, &serde_json::to_value(&*counts).unwrap_or_default())
        }
        (&Method::POST, "compact") => {
            state.store.lock().expect("store lock poisoned").compact();
            (StatusCode::OK, "history compacted\n").into_response()
        }
        (&Method::GET, "journal") => {
            let journal = state.journal.lock().expect("journal lock poisoned").since(since);
            json_response(200, &serde_json::to_value(journal).unwrap_or_default())
        }
        (&Method::DELETE, "journal") => {
            state.journal.lock().expect("journal lock poisoned").clear();
            (StatusCode::OK, "journal emptied\n").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "admin endpoints: PUT /testkit/faults, POST /testkit/drop-watches, POST /testkit/compact, GET|DELETE /testkit/journal, GET /testkit/requests\n")
            .into_response(),
    }
}

/// The resource a path addresses.
#[derive(Debug, Clone)]
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve(store: &Store, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let cat = &store.catalogue;
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && cat
            .get(group, version, rest[2])
            .is_some_and(|t| t.namespaced);
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let rt = cat.get(group, version, rest[0])?.clone();
    if rt.namespaced != namespace.is_some() && rest.len() > 1 {
        return None;
    }
    let subresource = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3
        || subresource.as_deref().is_some_and(|s| {
            !(s == "status" && rt.has_status
                || s == "scale" && rt.scale.is_some()
                || s == "token" && rt.group.is_empty() && rt.plural == "serviceaccounts")
        })
    {
        return None;
    }
    Some(Target {
        rt,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource,
    })
}

struct Request<'a> {
    state: &'a Arc<State>,
    target: Target,
    /// What the authorizer was asked before the handler ran.
    attributes: authz::Attributes,
    params: Params,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    user: &'a UserInfo,
    /// `Warning` headers for the response (from `Warn` admission bindings).
    warnings: RefCell<Vec<String>>,
}

type Outcome = Result<(u16, Value), ApiError>;

/// Serializes a list: items are shared with the store and only copied when the
/// requested version's `apiVersion` differs from the stored one.
fn list_json(rt: &ResourceType, meta: &Value, items: &[Arc<Value>]) -> String {
    let mut out = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        rt.kind,
        rt.api_version(),
        meta
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&versioned(rt, item).to_string());
    }
    out.push_str("]}");
    out
}

/// The object as `rt`'s version serves it, without copying when it already is.
fn versioned(rt: &ResourceType, object: &Arc<Value>) -> Arc<Value> {
    if object["apiVersion"].as_str() == Some(rt.api_version().as_str())
        && object["kind"].as_str() == Some(rt.kind.as_str())
    {
        object.clone()
    } else {
        Arc::new(with_version(rt, object))
    }
}

impl Request<'_> {
    fn flag(&self, name: &str) -> bool {
        matches!(
            self.params.get(name).map(String::as_str),
            Some("true" | "1")
        )
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn ns(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    fn selectors(&self) -> Result<(Selector, Selector), ApiError> {
        let labels = Selector::parse(self.param("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?;
        let fields = Selector::parse(self.param("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
        Ok((labels, fields))
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                a.split(',')
                    .next()
                    .is_some_and(|first| first.contains("as=Table"))
            })
    }

    /// The field manager: the `fieldManager` parameter, else the user agent's product
    /// name, as the real server derives it.
    fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager") {
            return m.to_string();
        }
        let agent = self
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        agent.split('/').next().unwrap_or("unknown").to_string()
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// Runs `write` with this request's admission context, keeping its warnings for
    /// the response whether or not the write is admitted.
    /// An apply that creates its object is authorized as `create` as well as `patch`, as
    /// kube-apiserver's patch handler does: a role with `patch` alone cannot create.
    fn authorize_create(&self, store: &Store) -> Result<(), ApiError> {
        if self.state.config.authorization_mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let mut attributes = self.attributes.clone();
        attributes.verb = "create".to_owned();
        if store
            .rbac_policy()
            .authorize(self.user, &attributes)
            .allowed
        {
            Ok(())
        } else {
            Err(authz::forbidden(self.user, &attributes))
        }
    }

    fn admitted<T>(&self, write: impl FnOnce(&mut Admission) -> T) -> T {
        let mut admission = Admission::new(
            self.user.clone(),
            self.target.subresource.as_deref().unwrap_or_default(),
            self.dry_run(),
        );
        let result = write(&mut admission);
        self.warnings.borrow_mut().extend(admission.warnings);
        result
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        let content_type = self.content_type();
        if content_type.contains("protobuf") || content_type.contains("cbor") {
            // The real server's answer to a media type it does not decode; client-go
            // then retries in JSON.
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
                ),
            ));
        }
        if let Ok(v) = serde_json::from_slice::<Value>(self.body) {
            return Ok(v);
        }
        let text = std::str::from_utf8(self.body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_saphyr::from_str::<Value>(text).map_err(|e| {
            ApiError::bad_request(format!("the request body is neither JSON nor YAML: {e}"))
        })
    }

    fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default()
    }

    fn render(&self, rt: &ResourceType, object: Value) -> Value {
        if self.wants_table() {
            let include = IncludeObject::parse(self.param("includeObject"));
            let meta = json!({ "resourceVersion": object["metadata"]["resourceVersion"] });
            return table::table(rt, &[&object], include, meta, true);
        }
        object
    }

    /// Lists are written straight from the shared objects instead of being built as one
    /// large `Value`.
    fn list(&self) -> Result<Response, ApiError> {
        let (labels, fields) = self.selectors()?;
        let limit = self
            .param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let store = self.state.store.lock().expect("store lock poisoned");
        let rt = &self.target.rt;
        let page = store.list(
            rt,
            self.target.namespace.as_deref(),
            &labels,
            &fields,
            limit,
            self.param("continue"),
        )?;
        drop(store);
        let mut meta = json!({ "resourceVersion": page.revision.to_string() });
        if let Some(token) = &page.continue_token {
            meta["continue"] = json!(token);
            meta["remainingItemCount"] = json!(page.remaining);
        }
        if self.wants_table() {
            let include = IncludeObject::parse(self.param("includeObject"));
            let items: Vec<&Value> = page.items.iter().map(|o| o.as_ref()).collect();
            return Ok(json_response(
                200,
                &table::table(rt, &items, include, meta, true),
            ));
        }
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            list_json(rt, &meta, &page.items),
        )
            .into_response())
    }

    /// A review, answered for the authenticated user and never stored.
    fn review(&self) -> Outcome {
        let body = match super::protobuf::review(self.body) {
            Some(decoded) if self.content_type().contains("protobuf") => decoded,
            _ => self.body_json()?,
        };
        let policy = self
            .state
            .store
            .lock()
            .expect("store lock poisoned")
            .rbac_policy();
        let mut answered = super::reviews::answer(
            &self.target.rt.kind,
            self.state.config.authorization_mode,
            &policy,
            self.user,
            body,
        )?;
        answered["apiVersion"] = json!(self.target.rt.api_version());
        Ok((201, answered))
    }

    /// `POST .../serviceaccounts/NAME/token` (`kubectl create token NAME`).
    fn token_request(&self) -> Outcome {
        // kubectl posts the TokenRequest in protobuf; its fields only shape the answer.
        let body = self.body_json().unwrap_or_else(|_| json!({}));
        let sa = {
            let store = self.state.store.lock().expect("store lock poisoned");
            store.get(&self.target.rt, self.ns(), self.name())?
        };
        let token = mint_service_account_token(self.state, self.ns(), self.name());
        let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
        let expires = chrono::Utc::now() + chrono::Duration::seconds(seconds);
        Ok((
            201,
            json!({ "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": { "name": self.name(), "namespace": self.ns(),
                    "creationTimestamp": sa["metadata"]["creationTimestamp"] },
                "spec": { "audiences": body["spec"]["audiences"].as_array().cloned().unwrap_or_default(),
                    "expirationSeconds": seconds, "boundObjectRef": body["spec"]["boundObjectRef"] },
                "status": { "token": token,
                    "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) } }),
        ))
    }

    fn get(&self) -> Outcome {
        let store = self.state.store.lock().expect("store lock poisoned");
        let object = store.get(&self.target.rt, self.ns(), self.name())?;
        if self.target.subresource.as_deref() == Some("scale") {
            return Ok((200, scale_of(&self.target.rt, &object)));
        }
        Ok((200, self.render(&self.target.rt, object)))
    }

    fn create(&self) -> Outcome {
        let body = self.body_json()?;
        let manager = self.manager();
        let mut store = self.state.store.lock().expect("store lock poisoned");
        let created = self.admitted(|admission| {
            store.create_or_check(
                &self.target.rt,
                self.ns(),
                body,
                &manager,
                self.dry_run(),
                Some(admission),
            )
        })?;
        Ok((201, created))
    }
    /// Builds the next version of an object from the current one and a candidate,
    /// honouring the subresource: status writes keep everything but status, main
    /// writes keep status (for kinds with a status subresource), scale writes only
    /// change the replica count.
    fn scoped(&self, old: &Value, candidate: Value) -> Result<Value, ApiError> {
        let rt = &self.target.rt;
        match self.target.subresource.as_deref() {
            Some("status") => {
                let mut next = old.clone();
                next["status"] = candidate.get("status").cloned().unwrap_or(Value::Null);
                if next["status"].is_null()
                    && let Some(m) = next.as_object_mut()
                {
                    m.remove("status");
                }
                if let Some(rv) = candidate["metadata"].get("resourceVersion") {
                    next["metadata"]["resourceVersion"] = rv.clone();
                }
                Ok(next)
            }
            Some("scale") => {
                let scale = rt
                    .scale
                    .as_ref()
                    .expect("resolved only when the kind has scale");
                let mut next = old.clone();
                let replicas = candidate["spec"]["replicas"].clone();
                if !replicas.is_i64() && !replicas.is_u64() {
                    return Err(ApiError::invalid(
                        rt,
                        self.name(),
                        "spec.replicas",
                        "must be an integer",
                    ));
                }
                jsonpath::set(&mut next, &scale.spec_replicas, replicas);
                if let Some(rv) = candidate["metadata"].get("resourceVersion") {
                    next["metadata"]["resourceVersion"] = rv.clone();
                }
                Ok(next)
            }
            _ => {
                let mut next = candidate;
                if rt.has_status {
                    match old.get("status") {
                        Some(s) => next["status"] = s.clone(),
                        None => {
                            if let Some(m) = next.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                Ok(next)
            }
        }
    }

    fn commit(&self, store: &mut Store, old: &Value, mut next: Value, track: bool) -> Outcome {
        let rt = &self.target.rt;
        if track {
            let sub = self.target.subresource.clone().unwrap_or_default();
            let manager = self.manager();
            next["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
            apply::record_update(
                old,
                &mut next,
                &manager,
                &sub,
                &rt.api_version(),
                &now_rfc3339(),
            );
        }
        // Under dry run the store validates and admits, and stores nothing.
        let updated = self.admitted(|admission| {
            store.update_admitted(rt, self.ns(), self.name(), next, Some(admission))
        })?;
        if self.target.subresource.as_deref() == Some("scale") {
            return Ok((200, scale_of(rt, &updated)));
        }
        Ok((200, updated))
    }

    fn update(&self) -> Outcome {
        let body = self.body_json()?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        let mut store = self.state.store.lock().expect("store lock poisoned");
        let old = store.get(&self.target.rt, self.ns(), self.name())?;
        let next = self.scoped(&old, body)?;
        self.commit(&mut store, &old, next, true)
    }

    fn patch(&self) -> Outcome {
        let content_type = self.content_type();
        let body = self.body_json()?;
        let rt = self.target.rt.clone();
        let mut store = self.state.store.lock().expect("store lock poisoned");
        if content_type == "application/apply-patch+yaml" {
            return self.apply(&mut store, body);
        }
        let old = store.get(&rt, self.ns(), self.name())?;
        let mut base = if self.target.subresource.as_deref() == Some("scale") {
            scale_of(&rt, &old)
        } else {
            old.clone()
        };
        match content_type.as_str() {
            "application/merge-patch+json" => patch::merge_patch(&mut base, &body),
            "application/json-patch+json" => patch::json_patch(&mut base, &body)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
            "application/strategic-merge-patch+json" => {
                if rt.custom {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources: use a merge patch or a JSON patch",
                    ));
                }
                patch::strategic_merge(&mut base, &body)
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the patch content type {other:?} is not supported: use application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
                    ),
                ));
            }
        }
        let next = self.scoped(&old, base)?;
        self.commit(&mut store, &old, next, true)
    }

    fn apply(&self, store: &mut Store, config: Value) -> Outcome {
        let rt = self.target.rt.clone();
        let Some(manager) = self.param("fieldManager") else {
            return Err(ApiError::bad_request(
                "fieldManager is required for apply requests: pass ?fieldManager=<name>",
            ));
        };
        if config["apiVersion"].as_str().is_none() || config["kind"].as_str().is_none() {
            return Err(ApiError::bad_request(
                "an applied configuration must set apiVersion and kind",
            ));
        }
        let sub = self.target.subresource.clone().unwrap_or_default();
        let scope = match sub.as_str() {
            "status" => Scope::StatusOnly,
            _ if rt.has_status => Scope::AllButStatus,
            _ => Scope::Everything,
        };
        let now = now_rfc3339();
        let api_version = rt.api_version();
        let req = ApplyRequest {
            manager,
            force: self.flag("force"),
            subresource: &sub,
            api_version: &api_version,
            scope,
            now: &now,
        };
        let conflict = |conflicts: Vec<apply::Conflict>| {
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| {
                    format!(
                        "conflict with \"{}\" using {}: {}",
                        c.manager, c.api_version, c.field
                    )
                })
                .collect();
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    lines.join("\n")
                ),
            );
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({ "reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": c.field }))
                .collect();
            e.details = Some(
                json!({ "name": self.name(), "group": rt.group, "kind": rt.plural, "causes": causes }),
            );
            e
        };
        let old = match store.get(&rt, self.ns(), self.name()) {
            Ok(old) => old,
            Err(e) if e.code == 404 && sub.is_empty() => {
                self.authorize_create(store)?;
                let mut created = apply::apply(&json!({}), &config, &req).map_err(conflict)?;
                created["metadata"]["name"] = json!(self.name());
                if rt.namespaced {
                    created["metadata"]["namespace"] = json!(self.ns());
                }
                let created = self.admitted(|admission| {
                    store.create_or_check(
                        &rt,
                        self.ns(),
                        created,
                        "",
                        self.dry_run(),
                        Some(admission),
                    )
                })?;
                return Ok((201, created));
            }
            Err(e) => return Err(e),
        };
        if let Some(rv) = config["metadata"]["resourceVersion"].as_str()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(&rt, self.name()));
        }
        let config_name = config["metadata"]["name"].as_str().unwrap_or(self.name());
        if config_name != self.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let merged = apply::apply(&old, &config, &req).map_err(conflict)?;
        let next = match scope {
            Scope::StatusOnly => {
                let mut next = old.clone();
                next["status"] = merged["status"].clone();
                next["metadata"]["managedFields"] = merged["metadata"]["managedFields"].clone();
                next
            }
            Scope::AllButStatus => {
                let mut next = merged;
                match old.get("status") {
                    Some(s) => next["status"] = s.clone(),
                    None => {
                        if let Some(m) = next.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                next
            }
            Scope::Everything => merged,
        };
        self.commit(store, &old, next, false)
    }

    /// The admission policies' judgement of deleting `old`.
    fn admit_delete(&self, store: &Store, old: &Value) -> Result<(), ApiError> {
        let namespace = old["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = old["metadata"]["name"].as_str().unwrap_or_default();
        self.admitted(|admission| {
            admission::admit(
                store,
                admission,
                Attempt {
                    rt: &self.target.rt,
                    operation: Operation::Delete,
                    namespace,
                    name,
                    object: None,
                    old_object: Some(old),
                },
            )
        })
    }

    fn delete_options(&self) -> Result<(Propagation, Option<String>, Option<String>), ApiError> {
        let options: Value = if self.body.is_empty() {
            json!({})
        } else {
            self.body_json()?
        };
        let policy = options["propagationPolicy"]
            .as_str()
            .or(self.param("propagationPolicy"));
        let orphan = options["orphanDependents"].as_bool().unwrap_or(false);
        let propagation = match policy {
            Some("Foreground") => Propagation::Foreground,
            Some("Orphan") => Propagation::Orphan,
            Some("Background") | None if !orphan => Propagation::Background,
            None => Propagation::Orphan,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy {other:?} is not valid: use Background, Foreground or Orphan"
                )));
            }
        };
        let uid = options["preconditions"]["uid"].as_str().map(str::to_string);
        let rv = options["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        Ok((propagation, uid, rv))
    }

    fn delete(&self) -> Outcome {
        let (propagation, uid, rv) = self.delete_options()?;
        let mut store = self.state.store.lock().expect("store lock poisoned");
        let old = store.get(&self.target.rt, self.ns(), self.name())?;
        self.admit_delete(&store, &old)?;
        if self.dry_run() {
            return Ok((200, old));
        }
        let deleted = store.delete(
            &self.target.rt,
            self.ns(),
            self.name(),
            propagation,
            uid.as_deref(),
            rv.as_deref(),
        )?;
        let code = if deleted["metadata"].get("deletionTimestamp").is_some() {
            202
        } else {
            200
        };
        Ok((code, deleted))
    }

    fn delete_collection(&self) -> Outcome {
        let (labels, fields) = self.selectors()?;
        let (propagation, _, _) = self.delete_options()?;
        let mut store = self.state.store.lock().expect("store lock poisoned");
        let rt = self.target.rt.clone();
        let page = store.list(
            &rt,
            self.target.namespace.as_deref(),
            &labels,
            &fields,
            None,
            None,
        )?;
        let mut deleted = Vec::new();
        for item in page.items {
            let ns = item["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.admit_delete(&store, &item)?;
            if let Ok(d) = store.delete(&rt, &ns, &name, propagation, None, None) {
                deleted.push(d);
            }
        }
        Ok((
            200,
            json!({ "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
            "metadata": { "resourceVersion": store.revision().to_string() }, "items": deleted }),
        ))
    }
}

/// The `autoscaling/v1 Scale` view of an object.
fn scale_of(rt: &ResourceType, object: &Value) -> Value {
    let Some(paths) = &rt.scale else {
        return Value::Null;
    };
    let spec = jsonpath::get(object, &paths.spec_replicas)
        .cloned()
        .unwrap_or(json!(0));
    let status = jsonpath::get(object, &paths.status_replicas)
        .cloned()
        .unwrap_or(json!(0));
    let selector = if rt.custom {
        paths
            .label_selector
            .as_deref()
            .and_then(|p| jsonpath::get(object, p))
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        object["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
    };
    let meta = &object["metadata"];
    let mut scale = json!({ "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": { "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"] },
        "spec": { "replicas": spec }, "status": { "replicas": status } });
    if let Some(s) = selector {
        scale["status"]["selector"] = json!(s);
    }
    scale
}

/// Streams a watch as newline-delimited JSON events over a chunked response.
fn watch(request: Request<'_>) -> Response {
    let (labels, fields) = match request.selectors() {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let rt = request.target.rt.clone();
    let namespace = request.target.namespace.clone();
    let table = request
        .wants_table()
        .then(|| IncludeObject::parse(request.param("includeObject")));
    let bookmarks = request.flag("allowWatchBookmarks");
    let initial_events = request.flag("sendInitialEvents");
    let timeout = request
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let start: Option<u64> = match request.param("resourceVersion") {
        None | Some("0") => None,
        Some(rv) => match rv.parse() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return error_response(&ApiError::bad_request(format!(
                    "resourceVersion {rv:?} is not valid"
                )));
            }
        },
    };
    let state = request.state.clone();
    let filter = WatchFilter {
        namespace,
        labels,
        fields,
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let mut cut = state.watch_cut.subscribe();
    let (initial, mut changes, mut last_revision) = {
        let store = state.store.lock().expect("store lock poisoned");
        let changes = store.subscribe();
        let resource = (rt.group.clone(), rt.plural.clone());
        let mut initial = Vec::new();
        let replay_all = start.is_none() || initial_events;
        let mut error = None;
        if replay_all {
            if let Ok(page) = store.list(
                &rt,
                filter.namespace.as_deref(),
                &filter.labels,
                &filter.fields,
                None,
                None,
            ) {
                initial.extend(page.items.into_iter().map(|o| ("ADDED", o)));
            }
        } else if let Some(rv) = start {
            match store.changes_since(&resource, rv) {
                Ok(history) => {
                    for change in history {
                        if let Some(event) = filter.event(
                            &rt,
                            &change.kind,
                            &change.object,
                            change.previous.as_ref(),
                        ) {
                            initial.push(event);
                        }
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        let revision = store.revision();
        if let Some(e) = error {
            initial = vec![("ERROR", Arc::new(e.to_status()))];
        } else if initial_events {
            let mut mark = json!({ "kind": rt.kind, "apiVersion": rt.api_version(),
                "metadata": { "resourceVersion": revision.to_string(), "annotations": { "k8s.io/initial-events-end": "true" } } });
            if table.is_some() {
                mark = json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": { "resourceVersion": revision.to_string() }, "columnDefinitions": [], "rows": [] });
            }
            initial.push(("BOOKMARK", Arc::new(mark)));
        }
        (initial, changes, revision.max(start.unwrap_or(0)))
    };
    let ended_with_error = initial.first().is_some_and(|(t, _)| *t == "ERROR");
    let drop_after = state
        .faults
        .lock()
        .expect("faults lock poisoned")
        .plan
        .drop_watch_after_events;
    let bookmark_interval = state.config.bookmark_interval;

    tokio::spawn(async move {
        let mut sent: u64 = 0;
        let mut columns_sent = false;
        let mut encode = |kind: &str, object: Arc<Value>| -> Bytes {
            let object = match (&table, kind) {
                (Some(include), "ADDED" | "MODIFIED" | "DELETED") => {
                    let t = table::table(&rt, &[&object], *include, json!({}), !columns_sent);
                    columns_sent = true;
                    Arc::new(t)
                }
                _ => object,
            };
            Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
        };
        for (kind, object) in initial {
            if tx.send(encode(kind, object)).await.is_err() {
                return;
            }
            sent += 1;
        }
        if ended_with_error {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            if drop_after > 0 && sent >= drop_after {
                return;
            }
            let sleep_until = deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => return,
                _ = cut.recv() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let mark = json!({ "kind": rt.kind, "apiVersion": rt.api_version(),
                        "metadata": { "resourceVersion": last_revision.to_string() } });
                    if tx.send(encode("BOOKMARK", Arc::new(mark))).await.is_err() { return; }
                }
                change = changes.recv() => {
                    let Ok(change) = change else { return };
                    if change.revision <= last_revision { continue; }
                    last_revision = change.revision;
                    if change.resource.0 != rt.group || change.resource.1 != rt.plural { continue; }
                    if let Some((kind, object)) = filter.event(&rt, &change.kind, &change.object, change.previous.as_ref()) {
                        if tx.send(encode(kind, object)).await.is_err() { return; }
                        sent += 1;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<Bytes, std::io::Error>(bytes), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// What one watch wants to see.
struct WatchFilter {
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl WatchFilter {
    fn selects(&self, object: &Value) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
        ns_ok && self.labels.matches_labels(object) && self.fields.matches_fields(object)
    }

    /// The event this watch sees for a change: a change that moves an object into the
    /// selection is ADDED, out of it DELETED, as the real server reports it.
    fn event(
        &self,
        rt: &ResourceType,
        kind: &ChangeKind,
        object: &Arc<Value>,
        previous: Option<&Arc<Value>>,
    ) -> Option<(&'static str, Arc<Value>)> {
        let now = self.selects(object);
        let before = previous.is_some_and(|p| self.selects(p));
        let object = versioned(rt, object);
        match kind {
            ChangeKind::Added if now => Some(("ADDED", object)),
            ChangeKind::Deleted if now || before => Some(("DELETED", object)),
            ChangeKind::Modified if now && before => Some(("MODIFIED", object)),
            ChangeKind::Modified if now => Some(("ADDED", object)),
            ChangeKind::Modified if before => Some(("DELETED", object)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Catalogue;

    fn labelled(app: &str) -> Arc<Value> {
        Arc::new(json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "c", "namespace": "default", "labels": { "app": app } } }))
    }

    #[test]
    fn selector_watches_see_objects_enter_and_leave_the_selection() {
        let catalogue = Catalogue::with_builtins();
        let rt = catalogue.get("", "v1", "configmaps").unwrap();
        let filter = WatchFilter {
            namespace: Some("default".into()),
            labels: Selector::parse("app=web").unwrap(),
            fields: Selector::default(),
        };
        let kind = |k, new: &Arc<Value>, old: Option<&Arc<Value>>| {
            filter.event(rt, &k, new, old).map(|(t, _)| t)
        };
        let (web, db) = (labelled("web"), labelled("db"));
        assert_eq!(kind(ChangeKind::Added, &web, None), Some("ADDED"));
        assert_eq!(kind(ChangeKind::Added, &db, None), None);
        assert_eq!(
            kind(ChangeKind::Modified, &web, Some(&web)),
            Some("MODIFIED")
        );
        assert_eq!(kind(ChangeKind::Modified, &db, Some(&web)), Some("DELETED"));
        assert_eq!(kind(ChangeKind::Modified, &web, Some(&db)), Some("ADDED"));
        assert_eq!(kind(ChangeKind::Modified, &db, Some(&db)), None);
        assert_eq!(kind(ChangeKind::Deleted, &web, Some(&web)), Some("DELETED"));
        let mut elsewhere = (*web).clone();
        elsewhere["metadata"]["namespace"] = json!("other");
        assert_eq!(kind(ChangeKind::Added, &Arc::new(elsewhere), None), None);
    }

    #[test]
    fn paths_resolve_to_resources_namespaces_and_subresources() {
        let store = Store::new(10);
        let t = resolve(
            &store,
            "apps",
            "v1",
            &["namespaces", "ns", "deployments", "d", "scale"],
        )
        .unwrap();
        assert_eq!(
            (
                t.rt.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref()
            ),
            ("deployments", Some("ns"), Some("d"))
        );
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let ns = resolve(&store, "", "v1", &["namespaces", "ns"]).unwrap();
        assert_eq!(
            (ns.rt.plural.as_str(), ns.name.as_deref(), ns.namespace),
            ("namespaces", Some("ns"), None)
        );
        let all = resolve(&store, "apps", "v1", &["deployments"]).unwrap();
        assert!(all.namespace.is_none() && all.name.is_none());
        assert!(
            resolve(
                &store,
                "",
                "v1",
                &["namespaces", "ns", "configmaps", "c", "scale"]
            )
            .is_none()
        );
        assert!(resolve(&store, "", "v1", &["nothing"]).is_none());
    }
}
