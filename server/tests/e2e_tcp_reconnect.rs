//! End-to-end: a NOTIFY in flight when its TCP connection drops is resent, same CSeq, on a
//! fresh connection the server opens to the watcher's Contact; a Contact nobody listens on
//! ends the subscription like Timer F. The real `herald` binary, 2 shards, fresh ports;
//! every wait is bounded (see `common`).

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A TCP watcher that leaves NOTIFYs unanswered.
fn silent_watcher(s: &Server) -> Client {
    let mut w = Client::tcp(s.sip);
    w.notify_answer = None;
    w
}

/// Subscribes `w` to `presentity` with `contact` as Contact (not the address it connects
/// from); returns the dialog and its initial NOTIFY.
fn subscribe(w: &mut Client, presentity: &str, contact: SocketAddr) -> (Dialog, Msg) {
    let mut d = Dialog::new("sip:watcher@example.com", presentity);
    let req = d.subscribe(w, 600).replace(
        &w.contact("watcher"),
        &format!("<sip:watcher@{contact};transport=tcp>"),
    );
    let r = w.request(&req);
    assert_eq!(r.code, Some(200), "{}", r.text());
    d.to_tag = r.tag_of("To");
    let first = w.expect_notify_where("initial NOTIFY", |n| n.call_id() == d.call_id);
    (d, first)
}

/// The next connection the server opens to `listener`, within the reply timeout.
fn accept_within(listener: &TcpListener, s: &Server) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                return c;
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("server never dialled the Contact ({e}): {:?}", s.stats()),
        }
    }
}

#[test]
fn notify_pending_on_a_dropped_connection_is_resent_to_the_contact() {
    let s = Server::start(&[]);
    let p = "sip:reconnect@example.com";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut w = silent_watcher(&s);
    let (d, first) = subscribe(&mut w, p, listener.local_addr().unwrap());
    drop(w);

    // A change while the NOTIFY is unanswered rides on the next one.
    let mut pubc = Client::udp(s.sip);
    let body = pidf(p, "t", "open", "after-reconnect");
    let r = pubc.request(&publish(&pubc, p, 600, None, Some(&body)));
    assert_eq!(r.code, Some(200), "{}", r.text());

    let mut fresh = Client::tcp_from(accept_within(&listener, &s), s.sip);
    let again = fresh.expect_notify("the pending NOTIFY, resent");
    assert_eq!(again.call_id(), d.call_id);
    assert_eq!(again.cseq(), first.cseq(), "same transaction, same CSeq");
    let next = fresh.expect_notify_where("the published state", |n| {
        n.body_str().contains("after-reconnect")
    });
    assert_eq!(next.cseq().0, first.cseq().0 + 1);
    s.wait_stats("the resend is counted", |st| {
        st.get("core.notify_resent_after_conn_loss")
            .is_some_and(|&n| n >= 1)
    });
    assert_eq!(s.stat("core.subscriptions"), 1);
}

/// One connection carrying dialogs owned by both shards: one of them learns of the close
/// through the hand-off mesh, and each owner dials the Contact itself.
#[test]
fn dialogs_of_both_shards_are_resent_after_their_shared_connection_drops() {
    let s = Server::start(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let contact = listener.local_addr().unwrap();
    let mut w = silent_watcher(&s);
    let dialogs: Vec<(Dialog, Msg)> = (0..2)
        .map(|shard| subscribe(&mut w, &aor_on_shard("reconn", shard, 2), contact))
        .collect();
    drop(w);

    let mut fresh: Vec<Client> = Vec::new();
    let mut resent: Vec<Msg> = Vec::new();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while resent.len() < dialogs.len() && Instant::now() < deadline {
        if let Ok((c, _)) = listener.accept() {
            c.set_nonblocking(false).unwrap();
            fresh.push(Client::tcp_from(c, s.sip));
        }
        for c in &mut fresh {
            resent.extend(c.collect_notifies(Duration::from_millis(50)));
        }
    }
    for (d, first) in &dialogs {
        let again = resent.iter().find(|n| n.call_id() == d.call_id);
        let again =
            again.unwrap_or_else(|| panic!("no resend for {}: {:?}", d.presentity, s.stats()));
        assert_eq!(again.cseq(), first.cseq(), "same transaction, same CSeq");
    }
    assert_eq!(fresh.len(), 2, "each owner shard dials its own connection");
}

#[test]
fn unreachable_contact_ends_the_subscription_like_timer_f() {
    let s = Server::start(&[]);
    // A port nobody listens on: the dial is refused at once.
    let contact: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut w = silent_watcher(&s);
    subscribe(&mut w, "sip:unreachable@example.com", contact);
    drop(w);
    s.wait_stats("the NOTIFY fails and the subscription ends", |st| {
        st.get("core.notify_failed_after_conn_loss")
            .is_some_and(|&n| n >= 1)
            && st.get("core.subscriptions") == Some(&0)
    });
}
