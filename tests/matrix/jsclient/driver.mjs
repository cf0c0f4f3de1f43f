// A matrix-js-sdk client with Rust crypto (the Element stack), driven over JSON lines.
//
// One process is one Matrix user on one device. Requests arrive on stdin, one JSON object a
// line: {"id": 1, "op": "login", ...}; each gets exactly one answer on stdout:
// {"id": 1, "ok": true, ...} or {"id": 1, "ok": false, "error": "..."}. Logs go to stderr.
// Requests run one after another, in the order they arrive. The process exits after `stop`,
// or when stdin is closed (its parent went away).
//
// Started by tests/support/jsclient.py, which documents every operation.

import { createInterface } from "node:readline";

// The SDK logs through console.*; stdout carries the protocol, so every console method writes
// to stderr instead. This must happen before the SDK is loaded.
for (const name of ["log", "info", "debug", "trace", "warn", "error"]) {
  console[name] = (...args) => process.stderr.write(formatLog(name, args) + "\n");
}

function formatLog(level, args) {
  const text = args
    .map((a) => (typeof a === "string" ? a : a instanceof Error ? a.stack : safeJson(a)))
    .join(" ");
  return `${new Date().toISOString()} ${level} ${text}`;
}

function safeJson(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const wasm = await import("@matrix-org/matrix-sdk-crypto-wasm");

logger.setLevel(process.env.JSCLIENT_LOG_LEVEL || "warn", false);

const {
  AllDevicesIsolationMode,
  OnlySignedDevicesIsolationMode,
  EventShieldColour,
  EventShieldReason,
} = cryptoApi;
const { ClientEvent, RoomEvent, MatrixEventEvent, EventType, MsgType, Preset, Visibility } = sdk;

const log = (...args) => process.stderr.write(formatLog("driver", args) + "\n");

// ------------------------------------------------------------------ state

let client = null;
let password = null;
let isolation = "only_signed";
const seen = []; // MatrixEvent, in arrival order
const seenIds = new Map(); // event_id -> {seq, event, firstFailureAt, attempts}
let autoJoinFrom = null; // null (off), "*" (anyone) or a Set of user ids
const joining = new Set();

function record(event) {
  const id = event.getId();
  if (!id || id.startsWith("~")) return; // a local echo: recorded when the server answers
  if (seenIds.has(id)) {
    seenIds.get(id).event = event;
    return;
  }
  seenIds.set(id, { seq: seen.length, event, failedSince: null, attempts: 0 });
  seen.push(id);
}

function describe(id) {
  const entry = seenIds.get(id);
  const ev = entry.event;
  const encrypted = ev.isEncrypted();
  const failed = ev.isDecryptionFailure();
  const pending = encrypted && !failed && (ev.isBeingDecrypted() || ev.shouldAttemptDecryption());
  const wire = ev.getWireContent();
  const content = failed || pending ? null : ev.getContent();
  const redacts = ev.event.redacts ?? (ev.getType() === EventType.RoomRedaction ? wire.redacts : undefined);
  return {
    seq: entry.seq,
    room_id: ev.getRoomId(),
    event_id: id,
    sender: ev.getSender(),
    type: ev.getType(),
    state_key: ev.getStateKey() ?? null,
    origin_server_ts: ev.getTs(),
    encrypted,
    decryption: !encrypted ? "plaintext" : failed ? "failed" : pending ? "pending" : "decrypted",
    failure_reason: failed ? (ev.decryptionFailureReason ?? "UNKNOWN_ERROR") : null,
    failed_for_ms: failed && entry.failedSince !== null ? Date.now() - entry.failedSince : null,
    decryption_attempts: entry.attempts,
    content,
    redacts: redacts ?? null,
    redacted: ev.isRedacted(),
    redacted_by: ev.getUnsigned()?.redacted_because?.event_id ?? null,
  };
}

function onDecrypted(event, err) {
  const entry = seenIds.get(event.getId());
  if (!entry) return;
  entry.attempts += 1;
  if (event.isDecryptionFailure()) {
    if (entry.failedSince === null) entry.failedSince = Date.now();
    log(`cannot decrypt ${event.getId()}: ${event.decryptionFailureReason} ${err ?? ""}`);
  } else {
    entry.failedSince = null;
  }
}

function inviterOf(room) {
  const me = client.getUserId();
  return room.getMember(me)?.events.member?.getSender() ?? room.getDMInviter() ?? null;
}

function roomSummary(room) {
  const me = client.getUserId();
  const myMember = room.getMember(me);
  const members = {};
  for (const m of room.getMembers()) members[m.userId] = m.membership;
  const direct = client.getAccountData(EventType.Direct)?.getContent() ?? {};
  const directWith = Object.entries(direct)
    .filter(([, rooms]) => Array.isArray(rooms) && rooms.includes(room.roomId))
    .map(([user]) => user);
  return {
    room_id: room.roomId,
    name: room.name,
    membership: room.getMyMembership(),
    inviter: room.getMyMembership() === "invite" ? inviterOf(room) : null,
    is_direct_invite: Boolean(myMember?.events.member?.getContent().is_direct),
    direct_with: directWith,
    encrypted: room.hasEncryptionStateEvent(),
    members,
  };
}

function maybeAutoJoin(room) {
  if (autoJoinFrom === null || room.getMyMembership() !== "invite") return;
  const inviter = inviterOf(room);
  if (autoJoinFrom !== "*" && !autoJoinFrom.has(inviter)) return;
  if (joining.has(room.roomId)) return;
  joining.add(room.roomId);
  log(`auto-joining ${room.roomId} (invited by ${inviter})`);
  joinRoom(room.roomId)
    .catch((e) => log(`auto-join of ${room.roomId} failed: ${e}`))
    .finally(() => joining.delete(room.roomId));
}

// ------------------------------------------------------------------ helpers

async function until(what, check, timeoutMs = 20000, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

function needClient() {
  if (!client) throw new Error("not logged in (send a `login` first)");
  return client;
}

function isolationMode(name) {
  if (name === "only_signed") return new OnlySignedDevicesIsolationMode();
  if (name === "all") return new AllDevicesIsolationMode(false);
  throw new Error(`isolation must be "only_signed" or "all", not ${JSON.stringify(name)}`);
}

async function waitJoined(roomId, timeoutMs) {
  // The sync can bring the invite again after the join was seen (a late batch), leaving the
  // room shown as "invite" while the server has us joined; /joined_rooms then settles it.
  let asked = Date.now();
  await until(`our join of ${roomId} to arrive by sync`, async () => {
    const room = client.getRoom(roomId);
    if (room && room.getMyMembership() === "join") return true;
    if (room && Date.now() - asked > 2000) {
      asked = Date.now();
      const { joined_rooms: joined } = await client.getJoinedRooms();
      if (joined.includes(roomId)) {
        log(`${roomId}: joined on the server though the sync shows "${room.getMyMembership()}"`);
        room.updateMyMembership("join");
        return true;
      }
    }
    return false;
  }, timeoutMs);
}

async function joinRoom(roomId, timeoutMs = 20000) {
  const room = client.getRoom(roomId);
  const inviteEvent = room?.getMember(client.getUserId())?.events.member;
  await client.joinRoom(roomId);
  await waitJoined(roomId, timeoutMs);
  // Element records a direct chat it was invited to in m.direct when it joins.
  if (inviteEvent?.getContent().is_direct) {
    await addDirect(inviteEvent.getSender(), roomId);
  }
}

async function addDirect(userId, roomId) {
  const content = { ...(client.getAccountData(EventType.Direct)?.getContent() ?? {}) };
  const rooms = new Set(content[userId] ?? []);
  rooms.add(roomId);
  content[userId] = [...rooms];
  await client.setAccountData(EventType.Direct, content);
}

function findEvent(roomId, eventId) {
  const entry = seenIds.get(eventId);
  if (entry) return entry.event;
  return client.getRoom(roomId)?.findEventById(eventId) ?? null;
}

async function freshKeys(userIds) {
  // Track the users (as sharing a room would) and re-query every tracked user's keys now, so
  // signatures uploaded a moment ago are seen without waiting for a device-list update.
  const crypto = client.getCrypto();
  await crypto.olmMachine.updateTrackedUsers(userIds.map((u) => new wasm.UserId(u)));
  await crypto.markAllTrackedUsersAsDirty();
  await crypto.outgoingRequestsManager.doProcessOutgoingRequests();
}

function enumName(enumObject, value) {
  return value === null || value === undefined ? null : (enumObject[value] ?? String(value));
}

// ------------------------------------------------------------------ operations

const ops = {
  async login(req) {
    if (client) throw new Error("already logged in");
    const { homeserver, user_id: userId } = req;
    password = req.password;
    isolation = req.isolation ?? "only_signed";
    const mode = isolationMode(isolation);
    const anon = sdk.createClient({ baseUrl: homeserver });
    const login = await anon.loginRequest({
      type: "m.login.password",
      identifier: { type: "m.id.user", user: userId },
      password,
      initial_device_display_name: req.device_name ?? "js-client (test)",
    });
    client = sdk.createClient({
      baseUrl: homeserver,
      userId: login.user_id,
      deviceId: login.device_id,
      accessToken: login.access_token,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const crypto = client.getCrypto();
    crypto.setDeviceIsolationMode(mode);

    client.on(RoomEvent.Timeline, (event) => record(event));
    // Our own messages reach the timeline as local echoes (temporary ids) and are updated in
    // place when the server answers: record them under their real id then.
    client.on(RoomEvent.LocalEchoUpdated, (event) => record(event));
    client.on(MatrixEventEvent.Decrypted, onDecrypted);
    client.on(RoomEvent.MyMembership, (room) => maybeAutoJoin(room));
    if (req.auto_join !== undefined && req.auto_join !== null) setAutoJoin(req.auto_join);

    const prepared = new Promise((resolve, reject) => {
      const onSync = (state, _prev, data) => {
        if (state === "PREPARED" || state === "SYNCING") {
          client.off(ClientEvent.Sync, onSync);
          resolve();
        } else if (state === "ERROR" && data?.error) {
          log(`sync error: ${data.error}`);
        }
      };
      client.on(ClientEvent.Sync, onSync);
      setTimeout(() => reject(new Error("no first sync within 30s")), 30000).unref();
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;

    const me = login.user_id;
    const device = login.device_id;
    if (req.cross_sign !== false) {
      // What Element does when it sets up a new account: create and upload cross-signing keys,
      // authenticating the upload with the password; the new device is signed on the way.
      await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
          await makeRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: me },
            password,
          });
        },
      });
      await until("our own device to be signed by our cross-signing key", async () => {
        const status = await crypto.getDeviceVerificationStatus(me, device);
        return status?.signedByOwner;
      });
    }
    const cs = await crypto.getCrossSigningStatus();
    return {
      user_id: me,
      device_id: device,
      isolation,
      cross_signing: {
        public_keys_on_device: cs.publicKeysOnDevice,
        private_keys_cached: cs.privateKeysCachedLocally,
        ready: await crypto.isCrossSigningReady(),
      },
    };
  },

  async set_isolation(req) {
    isolation = req.isolation;
    needClient().getCrypto().setDeviceIsolationMode(isolationMode(isolation));
    return { isolation };
  },

  async auto_join(req) {
    needClient();
    setAutoJoin(req.senders);
    return { auto_join: autoJoinFrom === null ? null : autoJoinFrom === "*" ? "*" : [...autoJoinFrom] };
  },

  async create_room(req) {
    const c = needClient();
    const me = c.getUserId();
    const invite = req.invite ?? [];
    const opts = {
      visibility: Visibility.Private,
      invite,
      preset: req.direct ? Preset.TrustedPrivateChat : Preset.PrivateChat,
      initial_state: [],
    };
    if (req.direct) opts.is_direct = true;
    if (req.name) opts.name = req.name;
    if (req.encrypted) {
      opts.initial_state.push({
        type: EventType.RoomEncryption,
        state_key: "",
        content: { algorithm: "m.megolm.v1.aes-sha2" },
      });
    }
    if (req.power_users) {
      // (a room creator is not listed: from room version 12 creators outrank power levels)
      opts.power_level_content_override = { users: { ...req.power_users } };
    }
    const { room_id: roomId } = await c.createRoom(opts);
    await waitJoined(roomId, req.timeout_ms ?? 20000);
    if (req.direct) {
      for (const user of invite) await addDirect(user, roomId);
    }
    if (req.encrypted) {
      await until(`encryption state of ${roomId}`, () => c.getCrypto().isEncryptionEnabledInRoom(roomId));
    }
    return { room_id: roomId };
  },

  async join(req) {
    needClient();
    await joinRoom(req.room_id, req.timeout_ms ?? 20000);
    return { room_id: req.room_id };
  },

  async send(req) {
    const c = needClient();
    await waitJoined(req.room_id, req.timeout_ms ?? 20000);
    const content = { msgtype: req.msgtype ?? MsgType.Text, body: req.body };
    if (req.html !== undefined && req.html !== null) {
      content.format = "org.matrix.custom.html";
      content.formatted_body = req.html;
    }
    if (req.relates_to) content["m.relates_to"] = req.relates_to;
    const room = c.getRoom(req.room_id);
    const encrypted = room.hasEncryptionStateEvent();
    const { event_id: eventId } = await c.sendMessage(req.room_id, content);
    return { event_id: eventId, encrypted };
  },

  async redact(req) {
    const c = needClient();
    const { event_id: eventId } = await c.redactEvent(req.room_id, req.event_id, undefined, req.reason ? { reason: req.reason } : undefined);
    return { event_id: eventId };
  },

  async events(req) {
    const c = needClient();
    const since = req.since ?? 0;
    const events = req.include_events === false ? [] : seen.slice(since).map(describe);
    const rooms = c.getRooms().map(roomSummary);
    return { events, next: seen.length, rooms };
  },

  async device_status(req) {
    const c = needClient();
    const crypto = c.getCrypto();
    const user = req.user_id;
    if (req.refresh !== false) await freshKeys([user]);
    const map = await crypto.getUserDeviceInfo([user], true);
    const devices = map.get(user) ?? new Map();
    const wanted = req.device_id ? [req.device_id] : [...devices.keys()];
    const out = [];
    for (const deviceId of wanted) {
      const device = devices.get(deviceId);
      const status = await crypto.getDeviceVerificationStatus(user, deviceId);
      out.push({
        device_id: deviceId,
        known: Boolean(device),
        display_name: device?.displayName ?? null,
        signed_by_owner: status ? status.signedByOwner : null,
        cross_signing_verified: status ? status.crossSigningVerified : null,
        locally_verified: status ? status.localVerified : null,
        verified: status ? status.isVerified() : null,
      });
    }
    const us = await crypto.getUserVerificationStatus(user);
    return {
      user_id: user,
      devices: out,
      user: {
        known_identity: us.known ?? null,
        cross_signing_verified: us.isCrossSigningVerified(),
        was_cross_signing_verified: us.wasCrossSigningVerified(),
        needs_user_approval: us.needsUserApproval,
        verified: us.isVerified(),
      },
    };
  },

  async event_info(req) {
    const c = needClient();
    const event = findEvent(req.room_id, req.event_id);
    if (!event) throw new Error(`event ${req.event_id} in ${req.room_id} has not been seen`);
    const info = await c.getCrypto().getEncryptionInfoForEvent(event);
    return {
      event_id: req.event_id,
      encrypted: event.isEncrypted(),
      decryption_failure: event.isDecryptionFailure(),
      failure_reason: event.isDecryptionFailure() ? (event.decryptionFailureReason ?? null) : null,
      info: info === null
        ? null
        : {
            shield_colour: enumName(EventShieldColour, info.shieldColour),
            shield_reason: enumName(EventShieldReason, info.shieldReason),
          },
    };
  },

  async whoami() {
    const c = needClient();
    return { user_id: c.getUserId(), device_id: c.getDeviceId(), isolation };
  },

  async stop() {
    if (client) {
      client.stopClient();
      client = null;
    }
    return { stopped: true };
  },
};

function setAutoJoin(senders) {
  if (senders === null || senders === undefined || senders === false) {
    autoJoinFrom = null;
    return;
  }
  autoJoinFrom = senders === "*" || senders === true ? "*" : new Set(senders);
  for (const room of client.getRooms()) maybeAutoJoin(room);
}

// ------------------------------------------------------------------ protocol

function answer(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

let stopping = false;
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
let chain = Promise.resolve();

lines.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(() => handle(line));
});

lines.on("close", () => {
  chain.then(() => {
    if (!stopping) log("stdin closed; exiting");
    if (client) client.stopClient();
    process.exit(0);
  });
});

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    answer({ id: null, ok: false, error: `not JSON: ${e.message}` });
    return;
  }
  const op = ops[req.op];
  if (!op) {
    answer({ id: req.id ?? null, ok: false, error: `unknown op ${JSON.stringify(req.op)}` });
    return;
  }
  try {
    const result = await op(req);
    answer({ id: req.id ?? null, ok: true, ...result });
  } catch (e) {
    const detail = e?.data ? ` ${safeJson(e.data)}` : "";
    log(`${req.op} failed: ${e?.stack ?? e}`);
    answer({ id: req.id ?? null, ok: false, error: `${req.op}: ${e?.message ?? e}${detail}` });
  }
  if (req.op === "stop") {
    stopping = true;
    process.exit(0);
  }
}

process.on("unhandledRejection", (e) => log(`unhandled rejection: ${e?.stack ?? e}`));
answer({ id: null, ok: true, ready: true, node: process.version });
