//! Kubernetes Events, one `events.k8s.io/v1` Event created per call, nothing cached.
//!
//! kube's `Recorder` folds an Event into an earlier one with the same reason and action
//! (a `series` patch that keeps the first note) and keeps every Event it sent for six
//! minutes to do so. Fife's Events each stand for one audit record with its own note, so
//! folding would hide the note of every step but the first; and at ten thousand Rollouts
//! changing at once the six-minute cache alone held tens of megabytes.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType};

/// The controller name on every Event.
pub const REPORTING_CONTROLLER: &str = "fife";

/// Creates Events as this replica (`reportingInstance`).
pub struct EventPublisher {
    client: Client,
    instance: String,
    /// Tells apart the names of Events about one object created in the same nanosecond.
    sequence: AtomicU64,
}

// The client has no Debug; the instance is what tells publishers apart.
impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    pub fn new(client: Client, instance: String) -> Self {
        EventPublisher {
            client,
            instance,
            sequence: AtomicU64::new(0),
        }
    }

    /// Creates one Event about `regarding`, in its namespace.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let built = build_event(
            event,
            regarding,
            &self.instance,
            jiff::Timestamp::now(),
            sequence,
        );
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &built)
            .await
            .map(|_| ())
    }
}

/// The Event object for `event`, named `<object>.<nanoseconds><sequence>` as kubectl and
/// client-go name theirs (object name, then a unique hex suffix). Pure.
pub fn build_event(
    event: &Event,
    regarding: &ObjectReference,
    instance: &str,
    now: jiff::Timestamp,
    sequence: u64,
) -> K8sEvent {
    let object = regarding.name.as_deref().unwrap_or(REPORTING_CONTROLLER);
    K8sEvent {
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        related: event.secondary.clone(),
        note: event.note.clone(),
        metadata: ObjectMeta {
            namespace: regarding.namespace.clone(),
            name: Some(format!(
                "{object}.{:x}{:x}",
                now.as_nanosecond(),
                sequence & 0xffff
            )),
            ..ObjectMeta::default()
        },
        reporting_controller: Some(REPORTING_CONTROLLER.into()),
        reporting_instance: Some(instance.to_owned()),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..K8sEvent::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "StepStarted".into(),
            note: Some(note.into()),
            action: "StepStarted".into(),
            secondary: None,
        }
    }

    #[test]
    fn each_event_keeps_its_own_note_and_name() {
        let regarding = ObjectReference {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..ObjectReference::default()
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        let first = build_event(&step("step 1"), &regarding, "fife-0", now, 0);
        let second = build_event(&step("step 2"), &regarding, "fife-0", now, 1);
        assert_eq!(first.note.as_deref(), Some("step 1"));
        assert_eq!(second.note.as_deref(), Some("step 2"));
        assert_ne!(first.metadata.name, second.metadata.name);
        assert!(first.metadata.name.unwrap().starts_with("web."));
        assert_eq!(first.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(first.series, None);
        assert_eq!(first.type_.as_deref(), Some("Normal"));
        assert_eq!(first.reporting_instance.as_deref(), Some("fife-0"));
        assert_eq!(first.reporting_controller.as_deref(), Some("fife"));
    }
}
