//! A command-line todo list on a synced atom: works offline, syncs when the server is
//! there. Run two copies side by side (each with its own file) against one server:
//!
//! ```text
//! cargo run -p atomsync-server -- --db server.db          # in one terminal (port 8090)
//! cargo run -p atomsync-client --example todo -- --db a.db # in another
//! cargo run -p atomsync-client --example todo -- --db b.db # and a third
//! ```
//!
//! Options: `--db PATH` (default `todo.db`), `--server URL` (default
//! `http://127.0.0.1:8090/sync`), `--group NAME` (default `todo`), `--token TOKEN`
//! (or `ATOMSYNC_TOKEN`). Type `help` for the commands.
//!
//! Two copies that edit one todo while offline merge their edits when they sync (see
//! `merge_todos`): the tags of both, the other fields from the copy that syncs last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atomsync_client::{
    Connection, Inst, Map, Options, Status, Store, SyncedAtom, Value, from_value, kw, to_value,
};
use serde::{Deserialize, Serialize};

/// One todo as the app sees it; stored as a map with a keyword set and an instant.
#[derive(Debug, Serialize, Deserialize)]
struct Todo {
    text: String,
    done: bool,
    /// A set of keywords, kept as a [`Value`] so that it stays a set.
    tags: Value,
    created: Value,
}

const HELP: &str = "commands:
  add TEXT        add a todo
  done N          toggle todo N done / not done
  tag N TAG       add the keyword TAG to todo N
  rm N            delete todo N
  ls              list the todos
  status          show the sync status
  sync            sync now (waits up to 5 s)
  quit            leave (everything is already saved)";

struct Args {
    db: String,
    server: String,
    group: String,
    token: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        db: "todo.db".into(),
        server: "http://127.0.0.1:8090/sync".into(),
        group: "todo".into(),
        token: std::env::var("ATOMSYNC_TOKEN").ok(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => args.db = value()?,
            "--server" => args.server = value()?,
            "--group" => args.group = value()?,
            "--token" => args.token = Some(value()?),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --db, --server, --group, --token)"
                ));
            }
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("todo: {message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(args).await {
        eprintln!("todo: {error}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), atomsync_client::ClientError> {
    let store = Store::open(&args.db)?;
    let mut options = Options::new(&args.server).resolver(merge_todos);
    if let Some(token) = &args.token {
        options = options.token(token);
    }
    let todos = store.synced_atom(&args.group, options)?;
    println!(
        "{} todos loaded from {}; syncing with {} ...",
        todos.snapshot().len(),
        args.db,
        args.server
    );
    let _ = tokio::time::timeout(Duration::from_secs(3), todos.ready()).await;
    print_status(&todos.status());
    print_list(&todos.snapshot());

    // Print the list again when a change arrives from elsewhere; our own writes set
    // `local` around the swap, which runs the watcher on this thread.
    let local = Arc::new(AtomicBool::new(false));
    let from_elsewhere = local.clone();
    let _watch = todos.watch(move |_old, new| {
        if !from_elsewhere.load(Ordering::SeqCst) {
            println!("\n[synced] the list changed:");
            print_list(new);
        }
    });
    let mut statuses = todos.status_watch();
    tokio::spawn(async move {
        let mut shown = statuses.borrow().connection;
        while statuses.changed().await.is_ok() {
            let status = statuses.borrow().clone();
            if status.connection != shown {
                shown = status.connection;
                print_status(&status);
            }
        }
    });

    let mut lines = stdin_lines();
    println!("type `help` for the commands");
    while let Some(line) = lines.recv().await {
        let line = line.trim();
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        local.store(true, Ordering::SeqCst);
        let outcome = command_line(&todos, command, rest.trim()).await;
        local.store(false, Ordering::SeqCst);
        match outcome {
            Ok(true) => break,
            Ok(false) => {}
            Err(message) => println!("{message}"),
        }
    }
    store.close().await;
    Ok(())
}

/// Merges two copies' edits of one todo (the conflict resolver): the tags of both, the
/// other fields as this copy has them. A local delete lets the server's todo stand; a todo
/// deleted on the server while edited here comes back.
fn merge_todos(_key: &str, local: Option<&Value>, current: Option<&Value>) -> Option<Value> {
    let mut merged: Todo = from_value(local?).ok()?;
    if let Some(current) = current {
        let theirs: Todo = from_value(current).ok()?;
        if let (Value::Set(mine), Some(their_tags)) = (&mut merged.tags, theirs.tags.as_set()) {
            for tag in their_tags {
                if !mine.contains(tag) {
                    mine.push(tag.clone());
                }
            }
        }
    }
    to_value(&merged).ok()
}

/// Runs one command; `Ok(true)` quits.
async fn command_line(todos: &SyncedAtom, command: &str, rest: &str) -> Result<bool, String> {
    match command {
        "" => {}
        "help" | "?" => println!("{HELP}"),
        "quit" | "exit" | "q" => return Ok(true),
        "ls" | "list" => print_list(&todos.snapshot()),
        "status" => print_status(&todos.status()),
        "add" if !rest.is_empty() => {
            let todo = Todo {
                text: rest.to_owned(),
                done: false,
                tags: Value::set(Vec::<Value>::new()),
                created: Value::Inst(Inst::now()),
            };
            let value = to_value(&todo).map_err(|e| e.to_string())?;
            todos.assoc(new_key(), value).map_err(|e| e.to_string())?;
            print_list(&todos.snapshot());
        }
        "done" | "rm" | "tag" => {
            let (number, tag) = rest.split_once(' ').unwrap_or((rest, ""));
            let key = nth_key(&todos.snapshot(), number)?;
            match command {
                "rm" => {
                    todos.dissoc(&key).map_err(|e| e.to_string())?;
                }
                "done" => edit(todos, &key, |todo| todo.done = !todo.done)?,
                _ if tag.trim().is_empty() => return Err("usage: tag N TAG".into()),
                _ => edit(todos, &key, |todo| {
                    if let Value::Set(items) = &mut todo.tags {
                        let tag = kw!(tag.trim());
                        if !items.contains(&tag) {
                            items.push(tag);
                        }
                    }
                })?,
            }
            print_list(&todos.snapshot());
        }
        "sync" => match tokio::time::timeout(Duration::from_secs(5), todos.sync_now()).await {
            Ok(Ok(())) => println!("in sync"),
            Ok(Err(error)) => println!("sync failed: {error}"),
            Err(_) => println!("not in sync after 5 s: {}", describe(&todos.status())),
        },
        _ => println!("unknown command {command:?}; type `help`"),
    }
    Ok(false)
}

/// Changes one todo through its struct.
fn edit(todos: &SyncedAtom, key: &str, change: impl Fn(&mut Todo)) -> Result<(), String> {
    let mut failure = None;
    todos
        .swap(|map: &mut Map| {
            let Some(value) = map.get(key) else { return };
            match from_value::<Todo>(value) {
                Ok(mut todo) => {
                    change(&mut todo);
                    match to_value(&todo) {
                        Ok(value) => {
                            map.insert(key.to_owned(), value);
                        }
                        Err(error) => failure = Some(error.to_string()),
                    }
                }
                Err(error) => failure = Some(format!("{key} is not a todo: {error}")),
            }
        })
        .map_err(|e| e.to_string())?;
    failure.map_or(Ok(()), Err)
}

/// The key of the todo numbered `number` in the list.
fn nth_key(map: &Map, number: &str) -> Result<String, String> {
    let index: usize = number
        .trim()
        .parse()
        .map_err(|_| format!("{number:?} is not a todo number"))?;
    sorted(map)
        .into_iter()
        .nth(index.wrapping_sub(1))
        .map(|(key, _)| key)
        .ok_or(format!("there is no todo {index}"))
}

/// The todos in creation order (keys start with the creation time).
fn sorted(map: &Map) -> Vec<(String, &Value)> {
    map.iter()
        .filter(|(key, _)| key.starts_with("todo:"))
        .map(|(key, value)| (key.clone(), value))
        .collect()
}

fn print_list(map: &Map) {
    let todos = sorted(map);
    if todos.is_empty() {
        println!("  (no todos: `add TEXT` makes one)");
    }
    for (index, (_key, value)) in todos.iter().enumerate() {
        match from_value::<Todo>(value) {
            Ok(todo) => {
                let tags: Vec<String> = todo
                    .tags
                    .as_set()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|tag| tag.as_kw().map(|name| format!(":{name}")))
                    .collect();
                let mark = if todo.done { "x" } else { " " };
                println!(
                    "  {:>2}. [{mark}] {} {}",
                    index + 1,
                    todo.text,
                    tags.join(" ")
                );
            }
            Err(_) => println!("  {:>2}. (not a todo) {value}", index + 1),
        }
    }
}

fn print_status(status: &Status) {
    println!("[{}]", describe(status));
}

fn describe(status: &Status) -> String {
    let connection = match status.connection {
        Connection::Live => "online, live",
        Connection::Polling => "online, polling",
        _ => "offline",
    };
    let mut text = format!(
        "{connection}; {} pending; cursor {}",
        status.pending, status.cursor
    );
    if let (false, Some(error)) = (status.online(), &status.last_error) {
        text.push_str(&format!("; {error}"));
    }
    text
}

/// A key that sorts by creation time and does not collide between copies.
fn new_key() -> String {
    let now = Inst::now();
    format!(
        "todo:{:010}{:09}-{:04x}",
        now.secs,
        now.nanos,
        rand::random::<u16>()
    )
}

/// Lines of stdin, read on a thread of their own (reading stdin blocks).
fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}
