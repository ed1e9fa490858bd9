/* Customer-service chat on the legacy client (ES5, no Promise/fetch/WebSocket).

   Who is who: every customer tab is a customer of its own. Its first visit asks the demo's token
   endpoint for `role=customer`, which mints a random `demo-customer-…` id; the tab keeps that id in
   sessionStorage (one per tab, kept across reloads) and renews its token with it. The agent desk is
   the one `demo-agent`: it lists a conversation per customer who wrote (newest activity first, with
   unread counts) and replies to the one it has open.

   Nothing is lost on a reload: each side keeps its transcript and an outbox of unsent messages
   (customers in sessionStorage, like their id; the desk in localStorage), the poller resumes from
   its saved cursor, and unsent messages are published again under the same client id, which the
   gateway stores only once. Every message is published with `receipt: true`: a bubble shows ✓ once
   the gateway stored it and ✓✓ once the other side's poller acknowledged it (its receipt arrives
   through our own poller). */
(function () {
  'use strict';

  var AGENT_ID = 'demo-agent';
  var CUSTOMER_ID = /^demo-customer[A-Za-z0-9._:@-]{0,114}$/;
  var ROLES = {
    customer: { title: 'Support chat', storage: 'sessionStorage', reset: 'Start over as a new customer' },
    agent: { title: 'Support desk (agent)', storage: 'localStorage', reset: 'Clear the desk' }
  };
  var STATUS_TEXT = { starting: 'Connecting…', connected: 'Connected', retrying: 'Reconnecting…', stopped: 'Disconnected' };
  var STATE_LABELS = { pending: 'sending…', sent: '✓', delivered: '✓✓', failed: 'retrying…', refused: 'not allowed' };
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  var API_BASE = '/';
  var CUSTOMER_ID_KEY = 'demo-chat:customer-id';

  var role = readRole();
  var settings = ROLES[role];
  // Customer state lives as long as the tab; the desk's survives closing it.
  var store = pickStorage(settings.storage);
  var tabStore = pickStorage('sessionStorage');

  var app = document.getElementById('app');
  var transcriptList = document.getElementById('transcript');
  var conversationList = document.getElementById('conversations');
  var noConversations = document.getElementById('no-conversations');
  var peerBar = document.getElementById('peer');
  var statusBadge = document.getElementById('status');
  var meLabel = document.getElementById('me');
  var textInput = document.getElementById('text');
  var sendButton = document.getElementById('send');

  var userId = null; // known at once for the agent; for a new customer once the token endpoint minted it
  var transcript = [];
  var outbox = [];
  // Receipts for messages whose publish answer has not come back yet (the receipt travels on
  // another connection, so it can overtake that answer, e.g. after a retried publish). By server id.
  var earlyReceipts = {};
  var lastSeq = 0; // order of activity as this page saw it, for "newest conversation first"
  var selected = null; // the agent's open conversation (a customer id), per tab
  var token = null;
  var poller = null;
  var publishing = false;
  var everConnected = false;

  function readRole() {
    var match = /[?&]role=([^&#]*)/.exec(window.location.search);
    var value = match ? decodeURIComponent(match[1]) : 'customer';
    return Object.prototype.hasOwnProperty.call(ROLES, value) ? value : 'customer';
  }

  // ----- storage -----

  // Storage can be missing or throw (private modes, sandboxed frames, full quota): degrade to memory.
  function pickStorage(name) {
    try {
      var storage = window[name];
      if (storage) {
        storage.setItem('demo-chat:probe', '1');
        storage.removeItem('demo-chat:probe');
        return storage;
      }
    } catch (ignored) {}
    var items = {};
    return {
      getItem: function (key) { return Object.prototype.hasOwnProperty.call(items, key) ? items[key] : null; },
      setItem: function (key, value) { items[key] = String(value); },
      removeItem: function (key) { delete items[key]; }
    };
  }

  function storageKey(name) {
    return 'demo-chat:' + userId + ':' + name;
  }

  function loadJson(name, fallback) {
    try {
      var raw = store.getItem(storageKey(name));
      return raw ? JSON.parse(raw) : fallback;
    } catch (ignored) {
      return fallback;
    }
  }

  function saveJson(name, value) {
    try {
      store.setItem(storageKey(name), JSON.stringify(value));
    } catch (ignored) {}
  }

  function tabGet(key) {
    try {
      return tabStore.getItem(key);
    } catch (ignored) {
      return null;
    }
  }

  function tabSet(key, value) {
    try {
      tabStore.setItem(key, value);
    } catch (ignored) {}
  }

  /** The poller's checkpoint, next to the transcript it belongs to (same storage, same user). */
  var cursorStore = {
    load: function () {
      var raw = store.getItem(storageKey('cursor'));
      if (!raw) return undefined;
      try {
        var checkpoint = JSON.parse(raw);
        return checkpoint && typeof checkpoint.cursor === 'number' ? checkpoint : undefined;
      } catch (ignored) {
        return undefined;
      }
    },
    save: function (checkpoint) {
      store.setItem(storageKey('cursor'), JSON.stringify(checkpoint));
    }
  };

  // ----- small helpers -----

  function setText(element, text) {
    while (element.firstChild) element.removeChild(element.firstChild);
    element.appendChild(document.createTextNode(text));
  }

  function clear(element) {
    while (element.firstChild) element.removeChild(element.firstChild);
  }

  function span(className, text) {
    var element = document.createElement('span');
    element.className = className;
    if (text !== undefined) setText(element, text);
    return element;
  }

  function isAgentId(id) {
    return id.indexOf(AGENT_ID) === 0;
  }

  /** `demo-customer-k3m9…` → `customer-k3m9…`; every agent is just "Agent". */
  function displayName(id) {
    if (isAgentId(id)) return 'Agent';
    return id.indexOf('demo-') === 0 ? id.slice(5) : id;
  }

  function pad(number, width) {
    var text = String(number);
    while (text.length < (width || 2)) text = '0' + text;
    return text;
  }

  function now() {
    return new Date().getTime();
  }

  /** Milliseconds from the gateway's ISO time (parsed by hand: engines before ES5 cannot). */
  function parseTime(iso) {
    if (typeof iso !== 'string') return null;
    var match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):?(\d{2}))$/.exec(iso);
    if (!match) return null;
    var millis = match[7] ? Number((match[7] + '00').slice(0, 3)) : 0;
    var time = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6]), millis);
    if (match[9]) {
      var offset = (Number(match[10]) * 60 + Number(match[11])) * 60000;
      time += match[9] === '+' ? -offset : offset;
    }
    return time;
  }

  function isoString(time) {
    var date = new Date(time);
    return date.getUTCFullYear() + '-' + pad(date.getUTCMonth() + 1) + '-' + pad(date.getUTCDate()) + 'T' +
      pad(date.getUTCHours()) + ':' + pad(date.getUTCMinutes()) + ':' + pad(date.getUTCSeconds()) + '.' + pad(date.getUTCMilliseconds(), 3) + 'Z';
  }

  /** "14:05" today, "3 Mar 14:05" before. */
  function clockText(time) {
    var date = new Date(time);
    var today = new Date();
    var clock = pad(date.getHours()) + ':' + pad(date.getMinutes());
    var sameDay = date.getFullYear() === today.getFullYear() && date.getMonth() === today.getMonth() && date.getDate() === today.getDate();
    return sameDay ? clock : date.getDate() + ' ' + MONTHS[date.getMonth()] + ' ' + clock;
  }

  function timeElement(time) {
    var element = document.createElement('time');
    element.className = 'time';
    element.setAttribute('datetime', isoString(time));
    element.setAttribute('title', new Date(time).toLocaleString());
    setText(element, clockText(time));
    return element;
  }

  // ----- status badge: one word per state, the details in its tooltip -----

  function showStatus(state, detail) {
    statusBadge.setAttribute('data-state', state);
    statusBadge.setAttribute('title', detail || '');
    setText(statusBadge, STATUS_TEXT[state]);
  }

  // ----- transcript -----

  /** Entries written by older versions of this page lack a peer, a time or a sequence number. */
  function normalise(entries) {
    for (var index = 0; index < entries.length; index++) {
      var entry = entries[index];
      if (!entry.peer) entry.peer = role === 'agent' ? 'demo-customer' : AGENT_ID;
      if (entry.state === 'read') entry.state = 'delivered';
      if (typeof entry.seq !== 'number') entry.seq = lastSeq + 1;
      if (entry.seq > lastSeq) lastSeq = entry.seq;
    }
    return entries;
  }

  function isVisible(entry) {
    return role === 'customer' || entry.peer === selected;
  }

  function indexOfKey(key) {
    for (var index = 0; index < transcript.length; index++) {
      if (transcript[index].key === key) return index;
    }
    return -1;
  }

  function bubbleFor(key) {
    for (var node = transcriptList.firstChild; node; node = node.nextSibling) {
      if (node.getAttribute && node.getAttribute('data-key') === key) return node;
    }
    return null;
  }

  function renderEntry(entry) {
    var item = document.createElement('li');
    item.className = 'message ' + (entry.mine ? 'mine' : 'theirs') + (entry.state ? ' ' + entry.state : '');
    item.setAttribute('data-key', entry.key);
    item.appendChild(span('who', entry.mine ? 'You' : displayName(entry.peer)));
    item.appendChild(span('text', entry.text));
    var meta = span('meta');
    if (typeof entry.at === 'number') meta.appendChild(timeElement(entry.at));
    if (entry.mine) {
      var state = span('state', STATE_LABELS[entry.state] || STATE_LABELS.pending);
      var title = stateTitle(entry);
      state.setAttribute('title', title);
      state.setAttribute('aria-label', title);
      meta.appendChild(state);
    }
    item.appendChild(meta);
    return item;
  }

  function stateTitle(entry) {
    if (entry.state === 'delivered') {
      return 'Delivered' + (typeof entry.deliveredAt === 'number' ? ' at ' + clockText(entry.deliveredAt) : '');
    }
    if (entry.state === 'sent') return 'Sent: stored by the gateway, not delivered yet';
    if (entry.state === 'failed') return 'Not sent yet: retrying';
    if (entry.state === 'refused') return 'Not sent: this recipient is not allowed';
    return 'Sending';
  }

  function placeholderText() {
    if (role === 'agent' && selected === null && transcript.length > 0) return 'Choose a conversation';
    return 'No messages yet';
  }

  function redraw() {
    clear(transcriptList);
    var shown = 0;
    for (var index = 0; index < transcript.length; index++) {
      if (!isVisible(transcript[index])) continue;
      transcriptList.appendChild(renderEntry(transcript[index]));
      shown++;
    }
    if (shown === 0) {
      var placeholder = document.createElement('li');
      placeholder.className = 'placeholder';
      setText(placeholder, placeholderText());
      transcriptList.appendChild(placeholder);
    }
    transcriptList.scrollTop = transcriptList.scrollHeight;
    renderSidebar();
  }

  /** Adds an entry unless one with the same key is already shown: a message appears exactly once. */
  function addEntry(entry) {
    if (indexOfKey(entry.key) >= 0) return;
    lastSeq += 1;
    entry.seq = lastSeq;
    transcript.push(entry);
    saveJson('transcript', transcript);
    var first = transcriptList.firstChild;
    var placeholder = first && first.className === 'placeholder' ? first : null;
    if (isVisible(entry)) {
      if (placeholder) transcriptList.removeChild(placeholder);
      transcriptList.appendChild(renderEntry(entry));
      transcriptList.scrollTop = transcriptList.scrollHeight;
    } else if (placeholder) {
      // "No messages yet" becomes "Choose a conversation" once there is one to choose.
      setText(placeholder, placeholderText());
    }
    renderSidebar();
  }

  function updateEntry(key, changes) {
    var index = indexOfKey(key);
    if (index < 0) return;
    var entry = transcript[index];
    for (var name in changes) {
      if (Object.prototype.hasOwnProperty.call(changes, name)) entry[name] = changes[name];
    }
    saveJson('transcript', transcript);
    var bubble = bubbleFor(key);
    if (bubble) transcriptList.replaceChild(renderEntry(entry), bubble);
  }

  // ----- the agent's conversation list -----

  /** One summary per customer: last entry (by activity), unread count; newest activity first. */
  function conversations() {
    var byPeer = {};
    var list = [];
    for (var index = 0; index < transcript.length; index++) {
      var entry = transcript[index];
      var summary = byPeer['~' + entry.peer];
      if (!summary) {
        summary = byPeer['~' + entry.peer] = { peer: entry.peer, last: entry, unread: 0 };
        list.push(summary);
      }
      if (entry.seq > summary.last.seq) summary.last = entry;
      if (!entry.mine && entry.unread) summary.unread++;
    }
    list.sort(function (a, b) { return b.last.seq - a.last.seq; });
    return list;
  }

  function renderSidebar() {
    if (role !== 'agent') return;
    var list = conversations();
    var unreadTotal = 0;
    clear(conversationList);
    for (var index = 0; index < list.length; index++) {
      conversationList.appendChild(renderConversation(list[index]));
      unreadTotal += list[index].unread;
    }
    noConversations.style.display = list.length === 0 ? '' : 'none';
    document.title = (unreadTotal > 0 ? '(' + unreadTotal + ') ' : '') + settings.title;
  }

  function renderConversation(summary) {
    var item = document.createElement('li');
    var button = document.createElement('button');
    var current = summary.peer === selected;
    button.type = 'button';
    button.className = 'conversation' + (current ? ' current' : '') + (summary.unread > 0 ? ' has-unread' : '');
    button.setAttribute('data-peer', summary.peer);
    button.setAttribute('aria-current', current ? 'true' : 'false');
    var top = span('line');
    top.appendChild(span('name', displayName(summary.peer)));
    if (typeof summary.last.at === 'number') top.appendChild(timeElement(summary.last.at));
    button.appendChild(top);
    var bottom = span('line');
    bottom.appendChild(span('preview', (summary.last.mine ? 'You: ' : '') + summary.last.text));
    if (summary.unread > 0) {
      var badge = span('unread', String(summary.unread));
      badge.setAttribute('title', summary.unread + ' unread');
      bottom.appendChild(badge);
    }
    button.appendChild(bottom);
    button.onclick = function () {
      openConversation(summary.peer);
    };
    item.appendChild(button);
    return item;
  }

  function openConversation(peer) {
    selected = peer;
    tabSet(storageKey('open'), peer);
    var changed = false;
    for (var index = 0; index < transcript.length; index++) {
      if (transcript[index].peer === peer && transcript[index].unread) {
        transcript[index].unread = false;
        changed = true;
      }
    }
    if (changed) saveJson('transcript', transcript);
    redraw();
    updateComposer();
    textInput.focus();
  }

  function updateComposer() {
    var canWrite = userId !== null && (role === 'customer' || selected !== null);
    textInput.disabled = !canWrite;
    sendButton.disabled = !canWrite;
    if (role === 'agent') {
      textInput.setAttribute('placeholder', selected ? 'Reply to ' + displayName(selected) : 'Choose a conversation first');
      setText(peerBar, selected ? 'Conversation with ' + displayName(selected) : '');
      peerBar.style.display = selected ? '' : 'none';
    }
  }

  // ----- receiving -----

  function receive(messages) {
    for (var index = 0; index < messages.length; index++) {
      var message = messages[index];
      var body = message.body && typeof message.body === 'object' ? message.body : { text: message.body };
      var text = typeof body.text === 'string' ? body.text : String(JSON.stringify(message.body));
      var peer = String(message.from);
      // The sender's client id identifies the message across redeliveries, even if the poller's
      // own de-duplication state were lost.
      addEntry({
        key: 'in:' + peer + ':' + (body.clientId || 'id-' + message.id),
        peer: peer,
        mine: false,
        text: text,
        at: parseTime(message.createdAt) || now(),
        unread: role === 'agent' && peer !== selected
      });
    }
  }

  /** ✓✓ on the bubble whose publish the gateway answered with this id. */
  function receiveReceipts(receipts) {
    for (var index = 0; index < receipts.length; index++) {
      var receipt = receipts[index];
      var deliveredAt = parseTime(receipt.at) || now();
      var found = false;
      for (var entry = 0; entry < transcript.length; entry++) {
        if (transcript[entry].mine && transcript[entry].serverId === receipt.id) {
          updateEntry(transcript[entry].key, { state: 'delivered', deliveredAt: deliveredAt });
          found = true;
        }
      }
      if (!found) earlyReceipts[receipt.id] = deliveredAt;
    }
    saveJson('early-receipts', earlyReceipts);
  }

  function onPollerStatus(status) {
    if (status.type === 'connected' || status.type === 'messages') {
      everConnected = true;
      showStatus('connected');
    } else if (status.type === 'retrying') {
      showStatus('retrying', 'Attempt ' + status.attempt + (status.error && status.error.code ? ': ' + status.error.code : ''));
    } else if (status.type === 'stopped' && status.error) {
      if (status.error.status === 401) {
        // Expired demo token: fetch a fresh one and carry on from the same cursor.
        showStatus('retrying', 'Renewing the token');
        token = null;
        fetchToken(function () {
          poller.start();
        });
      } else {
        showStatus('stopped', 'Stopped: ' + status.error.code + '. Reload the page to try again.');
      }
    }
  }

  // ----- sending -----

  function send(text) {
    var to = role === 'customer' ? AGENT_ID : selected;
    if (!userId || !to) return;
    var clientId = userId + '-' + LongPoll.newClientId();
    addEntry({ key: 'out:' + clientId, peer: to, mine: true, text: text, state: 'pending', at: now() });
    outbox.push({ clientId: clientId, text: text, to: to });
    saveJson('outbox', outbox);
    publishNext();
  }

  /** One message at a time, oldest first, so the other side receives them in the order typed. */
  function publishNext() {
    if (publishing || !token || outbox.length === 0) return;
    var item = outbox[0];
    var key = 'out:' + item.clientId;
    publishing = true;
    LongPoll.publish(
      {
        url: API_BASE,
        token: function () { return token; },
        to: item.to || (role === 'customer' ? AGENT_ID : 'demo-customer'),
        id: item.clientId,
        body: { text: item.text, clientId: item.clientId },
        receipt: true,
        retries: 6
      },
      function (error, result) {
        publishing = false;
        if (error && error.status === 403) {
          // The token may not write to this recipient (its `pub` claim): final, so retrying would
          // only block the messages queued behind it.
          outbox.shift();
          saveJson('outbox', outbox);
          updateEntry(key, { state: 'refused' });
          publishNext();
          return;
        }
        if (error) {
          updateEntry(key, { state: 'failed' });
          if (error.status === 401) {
            token = null;
            fetchToken(publishNext);
          } else {
            setTimeout(publishNext, 3000);
          }
          return;
        }
        outbox.shift();
        saveJson('outbox', outbox);
        var deliveredAt = earlyReceipts[result.id];
        if (deliveredAt !== undefined) {
          delete earlyReceipts[result.id];
          saveJson('early-receipts', earlyReceipts);
          updateEntry(key, { state: 'delivered', serverId: result.id, deliveredAt: typeof deliveredAt === 'number' ? deliveredAt : undefined });
        } else {
          updateEntry(key, { state: 'sent', serverId: result.id });
        }
        publishNext();
      }
    );
  }

  // ----- identity and start-up -----

  /** Loads what this page kept for `id` and shows it. */
  function becomeUser(id) {
    userId = id;
    transcript = normalise(loadJson('transcript', []));
    outbox = loadJson('outbox', []);
    earlyReceipts = loadJson('early-receipts', {});
    if (role === 'agent') {
      selected = tabGet(storageKey('open'));
    } else {
      setText(meLabel, 'You are ' + displayName(id));
      meLabel.setAttribute('data-user', id);
    }
    redraw();
    updateComposer();
  }

  /**
   * A token for this page's user. A customer tab without an id yet asks for `role=customer` and
   * keeps the id minted for it; afterwards (reloads, expired tokens) it asks for that id.
   */
  function fetchToken(then) {
    var query = userId ? 'user=' + encodeURIComponent(userId) : 'role=' + role;
    var xhr = new XMLHttpRequest();
    xhr.open('GET', 'token?' + query + '&_=' + now(), true);
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      var parsed = null;
      try {
        parsed = xhr.status === 200 ? JSON.parse(xhr.responseText) : null;
      } catch (ignored) {}
      var user = parsed && typeof parsed.user === 'string' ? parsed.user : null;
      var fits = user !== null && (userId ? user === userId : role === 'agent' ? user === AGENT_ID : CUSTOMER_ID.test(user));
      if (parsed && parsed.token && fits) {
        if (!userId) {
          tabSet(CUSTOMER_ID_KEY, user);
          becomeUser(user);
        }
        token = parsed.token;
        then();
      } else {
        showStatus(everConnected ? 'retrying' : 'starting', 'Waiting for the demo server');
        setTimeout(function () { fetchToken(then); }, 2000);
      }
    };
    xhr.send(null);
  }

  function startPolling() {
    poller = LongPoll.createLongPoller({
      url: API_BASE,
      token: function () { return token; },
      cursorStore: cursorStore,
      onMessages: receive,
      onReceipts: receiveReceipts,
      onStatus: onPollerStatus
    });
    poller.start();
    // A long poll is only answered when a message arrives (or `wait` passes): the page is
    // connected from the start unless the poller reports otherwise.
    everConnected = true;
    showStatus('connected');
    publishNext();
  }

  /** Customer: forget the id too, so the reload is a new customer. Agent: empty the desk. */
  function forget() {
    if (poller) poller.stop();
    var names = ['transcript', 'outbox', 'cursor', 'early-receipts'];
    try {
      if (userId) {
        for (var index = 0; index < names.length; index++) store.removeItem(storageKey(names[index]));
        tabStore.removeItem(storageKey('open'));
      }
      if (role === 'customer') tabStore.removeItem(CUSTOMER_ID_KEY);
    } catch (ignored) {}
    window.location.reload();
  }

  app.setAttribute('data-role', role);
  document.title = settings.title;
  setText(document.getElementById('title'), settings.title);
  setText(document.getElementById('reset'), settings.reset);
  if (role === 'agent') setText(meLabel, 'You are the agent');

  var savedCustomer = role === 'customer' ? tabGet(CUSTOMER_ID_KEY) : null;
  if (role === 'agent') {
    becomeUser(AGENT_ID);
  } else if (savedCustomer && CUSTOMER_ID.test(savedCustomer)) {
    becomeUser(savedCustomer);
  } else {
    redraw();
    updateComposer();
  }

  document.getElementById('composer').onsubmit = function () {
    var text = textInput.value.replace(/^\s+|\s+$/g, '');
    if (text) send(text);
    textInput.value = '';
    textInput.focus();
    return false;
  };
  document.getElementById('reset').onclick = forget;

  fetchToken(startPolling);
})();
