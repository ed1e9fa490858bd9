/* Customer-service desk on topics, on the legacy client (ES5, no Promise/fetch/WebSocket).

   Who is who: every tab is a user of its own. A tab's first visit asks the demo's token endpoint
   for `role=customer` or `role=agent`, which mints a random `demo-customer-…` or `demo-agent-…` id;
   the tab keeps it in sessionStorage (one per tab, kept across reloads) and renews its token with it.

   Three kinds of topic carry everything (the demo's tokens may write to no mailbox at all):
   - `conv:<customer id>`, one per customer: the conversation. The customer reads and writes its
     own; agents read and write every one (`conv:*`). Everybody reads a conversation from position
     0, so an agent who opens it late (a second agent, a new tab) sees all that was said, and every
     reader sees every new message, its own included: that is how a page learns a message's
     position, and so shows each conversation in the one order the gateway gave it.
   - `desk`: how agents learn which conversations exist. A poll names its topics (`conv:*` is a
     right, not something to read), and nothing lists the topics that exist, so before its first
     message a customer publishes a hello to the desk. Customers may only publish there, never
     read it, so no customer learns of another; agents read it from position 0 and follow
     `conv:<sender>` of each hello, the sender being the one the gateway vouches for (not the
     body's word). The hello has a fixed client id, so the gateway keeps it once however often a
     reload sends it again.
   - `announce`: agents post, every page reads it from now (what was said before it opened is old
     news).

   Nothing is lost on a reload: each tab keeps its transcript, its outbox of unsent messages and
   the poller's checkpoint (mailbox cursor and a position per topic) in sessionStorage, the poller
   resumes every topic from its saved position, and unsent messages are published again under the
   same client id, which the gateway stores only once. A bubble of yours shows ✓ once the gateway
   stored it. There is no ✓✓ any more: a topic message has many readers and nobody acknowledges
   it, so the gateway has no delivery receipt to send. */
(function () {
  'use strict';

  var DESK_TOPIC = 'desk';
  var ANNOUNCE_TOPIC = 'announce';
  var CONVERSATION_PREFIX = 'conv:';
  /** A topic name (the gateway's rule); a customer whose conversation would not be one has none. */
  var TOPIC_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
  /** The client id of a customer's hello on the desk: fixed, so the gateway stores it once. */
  var HELLO_ID = 'desk-hello';
  /**
   * A poll names at most POLL_TOPICS_MAX topics (64 by default), the desk and the announcements
   * among them: an agent page follows the newest 50 conversations it learnt of and forgets older
   * ones (the demo's stand-in for assigning conversations to agents).
   */
  var MAX_FOLLOWED = 50;
  var ROLES = {
    customer: { title: 'Support chat', reset: 'Start over as a new customer', id: /^demo-customer[A-Za-z0-9._:@-]{0,114}$/ },
    agent: { title: 'Support desk (agent)', reset: 'Start over as a new agent', id: /^demo-agent[A-Za-z0-9._:@-]{0,117}$/ }
  };
  var STATUS_TEXT = { starting: 'Connecting…', connected: 'Connected', retrying: 'Reconnecting…', stopped: 'Disconnected' };
  var STATE_LABELS = { pending: 'sending…', sent: '✓', failed: 'retrying…', refused: 'not allowed' };
  var STATE_TITLES = {
    pending: 'Sending',
    sent: 'Sent: stored by the gateway, in the conversation for everyone in it',
    failed: 'Not sent yet: retrying',
    refused: 'Not sent: not allowed in this conversation'
  };
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  /** Announcements shown at once, newest last (all are kept). */
  var ANNOUNCEMENTS_SHOWN = 5;
  var API_BASE = '/';

  var role = readRole();
  var settings = ROLES[role];
  var idKey = 'demo-desk:' + role + '-id';
  // Everything lives as long as the tab: an id per tab, and its state with it.
  var store = pickStorage('sessionStorage');

  var app = document.getElementById('app');
  var transcriptList = document.getElementById('transcript');
  var conversationList = document.getElementById('conversations');
  var noConversations = document.getElementById('no-conversations');
  var announcementList = document.getElementById('announcements');
  var peerBar = document.getElementById('peer');
  var statusBadge = document.getElementById('status');
  var meLabel = document.getElementById('me');
  var textInput = document.getElementById('text');
  var sendButton = document.getElementById('send');
  var announceInput = document.getElementById('announce-text');
  var announceButton = document.getElementById('announce-send');

  var userId = null; // known once the token endpoint minted it (or from this tab's storage)
  /** Conversation entries: {key, customer, from, mine, text, at, pos?, state?, unread?, note?, order}. */
  var transcript = [];
  /** Announcements: {key, text, at, pos?, pending?}. */
  var announcements = [];
  /** Unsent publishes, oldest first: {clientId, topic, body, key?} (key: the bubble or announcement it shows as). */
  var outbox = [];
  /** Agent: the conversations it follows, in the order the desk told of them: {customer, at}. */
  var known = [];
  /** Customer: the desk has (or will have, from the outbox) our hello. */
  var greeted = false;
  var lastOrder = 0; // arrival order on this page: ties between equal positions, pending messages
  var selected = null; // the agent's open conversation (a customer id)
  var token = null;
  var poller = null;
  var publishing = false;
  var everConnected = false;
  /**
   * Presence, known from the polls. Agent: customer id → online (true/false; absent = not asked
   * yet), from each conversation's members, then its joins and leaves. Customer: whether any agent
   * reads the desk (its members are the agents), asked every DESK_PRESENCE_MS.
   */
  var customerOnline = {};
  var agentOnline = null;
  var DESK_PRESENCE_MS = 5000;

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
        storage.setItem('demo-desk:probe', '1');
        storage.removeItem('demo-desk:probe');
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
    return 'demo-desk:' + userId + ':' + name;
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

  function storeGet(key) {
    try {
      return store.getItem(key);
    } catch (ignored) {
      return null;
    }
  }

  function storeSet(key, value) {
    try {
      store.setItem(key, value);
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

  function startsWith(text, prefix) {
    return text.slice(0, prefix.length) === prefix;
  }

  function isCustomerId(id) {
    return ROLES.customer.id.test(id);
  }

  /** The conversation topic of a customer, or null when `conv:<id>` is no topic name. */
  function conversationTopic(customer) {
    var topic = CONVERSATION_PREFIX + customer;
    return TOPIC_NAME.test(topic) ? topic : null;
  }

  /** `demo-customer-k3m9…` → `customer-k3m9…`; `demo-agent-7hq2…` → `Agent 7hq2`. */
  function displayName(id) {
    if (startsWith(id, 'demo-agent-')) return 'Agent ' + id.slice('demo-agent-'.length, 'demo-agent-'.length + 4);
    if (startsWith(id, 'demo-agent')) return 'Agent';
    return startsWith(id, 'demo-') ? id.slice(5) : id;
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

  /** A message body as text: `{text}` as the pages publish it, anything else as JSON. */
  function bodyText(body) {
    return body && typeof body === 'object' && typeof body.text === 'string' ? body.text : String(JSON.stringify(body));
  }

  function bodyClientId(body) {
    return body && typeof body === 'object' && typeof body.clientId === 'string' ? body.clientId : null;
  }

  // ----- status badge: one word per state, the details in its tooltip -----

  function showStatus(state, detail) {
    statusBadge.setAttribute('data-state', state);
    statusBadge.setAttribute('title', detail || '');
    setText(statusBadge, STATUS_TEXT[state]);
  }

  // ----- transcript -----

  function isVisible(entry) {
    return role === 'customer' || entry.customer === selected;
  }

  function position(entry) {
    return typeof entry.pos === 'number' ? entry.pos : Infinity;
  }

  /**
   * The conversation's order: by position in the topic (the gateway's order, the same on every
   * page), messages still on their way to the gateway last, in the order typed.
   */
  function byPosition(a, b) {
    var left = position(a);
    var right = position(b);
    if (left !== right) return left < right ? -1 : 1;
    return a.order - b.order;
  }

  function indexOfKey(list, key) {
    for (var index = 0; index < list.length; index++) {
      if (list[index].key === key) return index;
    }
    return -1;
  }

  function renderEntry(entry) {
    var item = document.createElement('li');
    item.setAttribute('data-key', entry.key);
    if (typeof entry.pos === 'number' && !entry.note) item.setAttribute('data-seq', String(entry.pos));
    if (entry.note) {
      item.className = 'note';
      setText(item, entry.text);
      return item;
    }
    item.className = 'message ' + (entry.mine ? 'mine' : 'theirs') + (entry.state ? ' ' + entry.state : '');
    item.appendChild(span('who', entry.mine ? 'You' : displayName(entry.from)));
    item.appendChild(span('text', entry.text));
    var meta = span('meta');
    if (typeof entry.at === 'number') meta.appendChild(timeElement(entry.at));
    if (entry.mine) {
      var state = span('state', STATE_LABELS[entry.state] || STATE_LABELS.pending);
      var title = STATE_TITLES[entry.state] || STATE_TITLES.pending;
      state.setAttribute('title', title);
      state.setAttribute('aria-label', title);
      meta.appendChild(state);
    }
    item.appendChild(meta);
    return item;
  }

  function placeholderText() {
    if (role === 'agent' && selected === null && known.length > 0) return 'Choose a conversation';
    return 'No messages yet';
  }

  function renderTranscript() {
    clear(transcriptList);
    var shown = [];
    for (var index = 0; index < transcript.length; index++) {
      if (isVisible(transcript[index])) shown.push(transcript[index]);
    }
    shown.sort(byPosition);
    for (var shownIndex = 0; shownIndex < shown.length; shownIndex++) transcriptList.appendChild(renderEntry(shown[shownIndex]));
    if (shown.length === 0) {
      var placeholder = document.createElement('li');
      placeholder.className = 'placeholder';
      setText(placeholder, placeholderText());
      transcriptList.appendChild(placeholder);
    }
    transcriptList.scrollTop = transcriptList.scrollHeight;
  }

  function redraw() {
    renderTranscript();
    renderSidebar();
    renderAnnouncements();
  }

  /** Adds an entry unless one with the same key is already there: a message appears exactly once. */
  function addEntry(entry) {
    if (indexOfKey(transcript, entry.key) >= 0) return;
    lastOrder += 1;
    entry.order = lastOrder;
    transcript.push(entry);
    saveJson('transcript', transcript);
    if (isVisible(entry)) renderTranscript();
    else if (transcriptList.firstChild && transcriptList.firstChild.className === 'placeholder') renderTranscript();
    renderSidebar();
  }

  function updateEntry(key, changes) {
    var index = indexOfKey(transcript, key);
    if (index < 0) return;
    var entry = transcript[index];
    for (var name in changes) {
      if (Object.prototype.hasOwnProperty.call(changes, name)) entry[name] = changes[name];
    }
    saveJson('transcript', transcript);
    if (isVisible(entry)) renderTranscript();
    renderSidebar();
  }

  // ----- the agent's conversation list -----

  /** One summary per conversation followed: its last entry, unread count; newest activity first. */
  function conversations() {
    var byCustomer = {};
    var list = [];
    for (var index = 0; index < known.length; index++) {
      var summary = { customer: known[index].customer, last: null, unread: 0, activity: known[index].at || 0 };
      byCustomer['~' + summary.customer] = summary;
      list.push(summary);
    }
    for (var entryIndex = 0; entryIndex < transcript.length; entryIndex++) {
      var entry = transcript[entryIndex];
      var owner = byCustomer['~' + entry.customer];
      if (!owner || entry.note) continue;
      if (!owner.last || byPosition(owner.last, entry) < 0) owner.last = entry;
      if (typeof entry.at === 'number' && entry.at > owner.activity) owner.activity = entry.at;
      if (!entry.mine && entry.unread) owner.unread++;
    }
    list.sort(function (a, b) { return b.activity - a.activity; });
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

  function previewText(last) {
    if (!last) return 'New conversation';
    if (last.mine) return 'You: ' + last.text;
    return (isCustomerId(last.from) ? '' : displayName(last.from) + ': ') + last.text;
  }

  function renderConversation(summary) {
    var item = document.createElement('li');
    var button = document.createElement('button');
    var current = summary.customer === selected;
    button.type = 'button';
    button.className = 'conversation' + (current ? ' current' : '') + (summary.unread > 0 ? ' has-unread' : '');
    button.setAttribute('data-customer', summary.customer);
    button.setAttribute('aria-current', current ? 'true' : 'false');
    var top = span('line');
    top.appendChild(span('name', displayName(summary.customer)));
    var online = customerOnline[summary.customer];
    if (online !== undefined) {
      var dot = span('presence ' + (online ? 'online' : 'offline'), online ? '● online' : '○ offline');
      dot.setAttribute('data-presence', online ? 'online' : 'offline');
      top.appendChild(dot);
    }
    if (summary.activity > 0) top.appendChild(timeElement(summary.activity));
    button.appendChild(top);
    var bottom = span('line');
    bottom.appendChild(span('preview', previewText(summary.last)));
    if (summary.unread > 0) {
      var badge = span('unread', String(summary.unread));
      badge.setAttribute('title', summary.unread + ' unread');
      bottom.appendChild(badge);
    }
    button.appendChild(bottom);
    button.onclick = function () {
      openConversation(summary.customer);
    };
    item.appendChild(button);
    return item;
  }

  function openConversation(customer) {
    selected = customer;
    storeSet(storageKey('open'), customer);
    for (var index = 0; index < transcript.length; index++) {
      if (transcript[index].customer === customer) transcript[index].unread = false;
    }
    saveJson('transcript', transcript);
    redraw();
    updateComposer();
    textInput.focus();
  }

  function updateComposer() {
    var canWrite = userId !== null && (role === 'customer' || selected !== null);
    textInput.disabled = !canWrite;
    sendButton.disabled = !canWrite;
    announceInput.disabled = role !== 'agent' || userId === null;
    announceButton.disabled = announceInput.disabled;
    if (role === 'agent') {
      textInput.setAttribute('placeholder', selected ? 'Reply to ' + displayName(selected) : 'Choose a conversation first');
      setText(peerBar, selected ? 'Conversation with ' + displayName(selected) + presenceText(customerOnline[selected]) : '');
      peerBar.setAttribute('data-presence', selected && customerOnline[selected] !== undefined ? (customerOnline[selected] ? 'online' : 'offline') : '');
      peerBar.style.display = selected ? '' : 'none';
    }
  }

  /**
   * A hello on the desk: follow that customer's conversation from its start. The newest
   * MAX_FOLLOWED are followed; the oldest beyond them is forgotten, with what it said.
   */
  function learnConversation(customer, at) {
    var topic = isCustomerId(customer) ? conversationTopic(customer) : null;
    if (!topic) return;
    if (isKnown(customer)) return;
    known.push({ customer: customer, at: at });
    poller.subscribe(topic, 0);
    askConversationPresence(customer);
    while (known.length > MAX_FOLLOWED) forgetConversation(known[0].customer);
    saveJson('known', known);
    redraw();
  }

  function isKnown(customer) {
    for (var index = 0; index < known.length; index++) {
      if (known[index].customer === customer) return true;
    }
    return false;
  }

  function forgetConversation(customer) {
    var kept = [];
    for (var index = 0; index < known.length; index++) {
      if (known[index].customer !== customer) kept.push(known[index]);
    }
    known = kept;
    poller.unsubscribe(conversationTopic(customer));
    var remaining = [];
    for (var entry = 0; entry < transcript.length; entry++) {
      if (transcript[entry].customer !== customer) remaining.push(transcript[entry]);
    }
    transcript = remaining;
    saveJson('transcript', transcript);
    if (selected === customer) {
      selected = null;
      updateComposer();
    }
  }

  // ----- announcements -----

  function renderAnnouncements() {
    clear(announcementList);
    var first = Math.max(0, announcements.length - ANNOUNCEMENTS_SHOWN);
    for (var index = first; index < announcements.length; index++) {
      var announcement = announcements[index];
      var item = document.createElement('li');
      item.className = 'announcement' + (announcement.refused ? ' refused' : announcement.pending ? ' pending' : '');
      item.appendChild(span('label', 'Announcement'));
      item.appendChild(span('text', announcement.text));
      if (typeof announcement.at === 'number') item.appendChild(timeElement(announcement.at));
      announcementList.appendChild(item);
    }
    announcementList.style.display = announcements.length === 0 ? 'none' : '';
  }

  function addAnnouncement(announcement) {
    var index = indexOfKey(announcements, announcement.key);
    // Our own, back from the gateway: stored, at the gateway's time.
    if (index >= 0) updateAnnouncement(announcement.key, { pending: false, at: announcement.at });
    else {
      announcements.push(announcement);
      saveJson('announcements', announcements);
      renderAnnouncements();
    }
  }

  function updateAnnouncement(key, changes) {
    var index = indexOfKey(announcements, key);
    if (index < 0) return;
    for (var name in changes) {
      if (Object.prototype.hasOwnProperty.call(changes, name)) announcements[index][name] = changes[name];
    }
    saveJson('announcements', announcements);
    renderAnnouncements();
  }

  // ----- receiving -----

  function receive(messages) {
    for (var index = 0; index < messages.length; index++) {
      var message = messages[index];
      var at = parseTime(message.createdAt) || now();
      var clientId = bodyClientId(message.body);
      var from = String(message.from);
      // The sender's client id identifies a message across redeliveries, and our own messages
      // as they come back from the topic.
      var key = from + ':' + (clientId || 'id-' + message.id);
      if (message.topic === DESK_TOPIC) {
        if (role === 'agent') learnConversation(from, at);
      } else if (message.topic === ANNOUNCE_TOPIC) {
        addAnnouncement({ key: 'ann:' + key, text: bodyText(message.body), at: at, pos: message.seq });
      } else if (typeof message.topic === 'string' && startsWith(message.topic, CONVERSATION_PREFIX)) {
        receiveConversationMessage(message, 'msg:' + key, from, at);
      }
      // Nothing else can arrive: no demo token may write to a mailbox.
    }
  }

  function receiveConversationMessage(message, key, from, at) {
    var customer = message.topic.slice(CONVERSATION_PREFIX.length);
    if (role === 'agent' && !isKnown(customer)) return; // forgotten while this answer was on its way
    var mine = from === userId;
    var index = indexOfKey(transcript, key);
    if (index >= 0) {
      // Ours, back through the topic (perhaps before the publish answer): stored, and now in its place.
      var entry = transcript[index];
      updateEntry(key, { pos: message.seq, at: at, state: entry.mine ? 'sent' : entry.state });
      return;
    }
    addEntry({
      key: key,
      customer: customer,
      from: from,
      mine: mine,
      text: bodyText(message.body),
      at: at,
      pos: message.seq,
      state: mine ? 'sent' : undefined,
      unread: role === 'agent' && !mine && customer !== selected
    });
  }

  /** Messages before `earliest` were trimmed from the topic's history before this page read them. */
  function onReset(topic, earliest) {
    if (!startsWith(topic, CONVERSATION_PREFIX)) return; // the desk and announcements: old news either way
    addEntry({
      key: 'reset:' + topic + ':' + earliest,
      customer: topic.slice(CONVERSATION_PREFIX.length),
      note: true,
      text: 'Earlier messages are no longer kept',
      pos: earliest - 0.5
    });
  }

  // ----- presence -----

  function presenceText(online) {
    if (online === undefined) return '';
    return online ? ' · online' : ' · offline';
  }

  /** Agent: whether the customer reads its conversation now (its members), before any join or leave comes. */
  function askConversationPresence(customer) {
    var topic = conversationTopic(customer);
    if (!topic || !token) return;
    LongPoll.topicPresence({ url: API_BASE, token: token, topic: topic }, function (error, result) {
      if (error || !result || !result.members) return;
      var online = false;
      for (var index = 0; index < result.members.length; index++) {
        if (result.members[index].user === customer) online = true;
      }
      // A join or leave that came meanwhile is newer than this answer.
      if (customerOnline[customer] === undefined) setCustomerOnline(customer, online);
    });
  }

  function setCustomerOnline(customer, online) {
    if (customerOnline[customer] === online) return;
    customerOnline[customer] = online;
    redraw();
    updateComposer();
  }

  /** Joins and leaves of the topics this page reads with the `presence` right (an agent's conversations). */
  function onPresence(events) {
    for (var index = 0; index < events.length; index++) {
      var event = events[index];
      if (startsWith(event.topic, CONVERSATION_PREFIX) && event.user === event.topic.slice(CONVERSATION_PREFIX.length)) {
        setCustomerOnline(event.user, event.event === 'join');
      }
    }
  }

  /** Customer: is an agent online? The desk's members are the agents reading it. */
  function askDeskPresence() {
    if (!token) return;
    LongPoll.topicPresence({ url: API_BASE, token: token, topic: DESK_TOPIC }, function (error, result) {
      if (!error && result) {
        agentOnline = result.count > 0;
        setText(peerBar, agentOnline ? 'An agent is online' : 'No agent online right now: leave a message');
        peerBar.setAttribute('data-presence', agentOnline ? 'online' : 'offline');
        peerBar.style.display = '';
      }
      setTimeout(askDeskPresence, DESK_PRESENCE_MS);
    });
  }

  function onPollerStatus(status) {
    if (status.type === 'connected' || status.type === 'messages') {
      everConnected = true;
      showStatus('connected');
    } else if (status.type === 'retrying') {
      showStatus('retrying', 'Attempt ' + status.attempt + (status.error && status.error.code ? ': ' + status.error.code : ''));
    } else if (status.type === 'stopped' && status.error) {
      if (status.error.status === 401) {
        // Expired demo token: fetch a fresh one and carry on from the same positions.
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
    var customer = role === 'customer' ? userId : selected;
    var topic = customer && conversationTopic(customer);
    if (!userId || !topic) return;
    if (role === 'customer' && !greeted) {
      // First the hello, so that agents follow the conversation (the outbox keeps this order).
      outbox.push({ clientId: HELLO_ID, topic: DESK_TOPIC, body: { hello: true } });
      greeted = true;
      saveJson('greeted', true);
    }
    var clientId = userId + '-' + LongPoll.newClientId();
    var key = 'msg:' + userId + ':' + clientId;
    addEntry({ key: key, customer: customer, from: userId, mine: true, text: text, state: 'pending', at: now() });
    outbox.push({ clientId: clientId, topic: topic, body: { text: text, clientId: clientId }, key: key });
    saveJson('outbox', outbox);
    publishNext();
  }

  function announce(text) {
    if (!userId) return;
    var clientId = userId + '-' + LongPoll.newClientId();
    var key = 'ann:' + userId + ':' + clientId;
    // Shown at once: this page reads announcements from now, and may have started reading after it sent this.
    announcements.push({ key: key, text: text, at: now(), pending: true });
    saveJson('announcements', announcements);
    renderAnnouncements();
    outbox.push({ clientId: clientId, topic: ANNOUNCE_TOPIC, body: { text: text, clientId: clientId }, key: key });
    saveJson('outbox', outbox);
    publishNext();
  }

  /** One message at a time, oldest first, so that every reader gets them in the order typed. */
  function publishNext() {
    if (publishing || !token || outbox.length === 0) return;
    var item = outbox[0];
    publishing = true;
    LongPoll.publish(
      {
        url: API_BASE,
        token: function () { return token; },
        topic: item.topic,
        id: item.clientId,
        body: item.body,
        retries: 6
      },
      function (error, result) {
        publishing = false;
        if (error && error.status === 403) {
          // The token may not write to this topic (its `topics` claim): final, so retrying would
          // only block the messages queued behind it.
          outbox.shift();
          saveJson('outbox', outbox);
          updateEntry(item.key, { state: 'refused' });
          updateAnnouncement(item.key, { refused: true });
          publishNext();
          return;
        }
        if (error) {
          updateEntry(item.key, { state: 'failed' });
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
        updateEntry(item.key, { state: 'sent', pos: result.seq });
        updateAnnouncement(item.key, { pending: false });
        publishNext();
      }
    );
  }

  // ----- identity and start-up -----

  /** Loads what this tab kept for `id` and shows it. */
  function becomeUser(id) {
    userId = id;
    transcript = loadJson('transcript', []);
    for (var index = 0; index < transcript.length; index++) {
      if (transcript[index].order > lastOrder) lastOrder = transcript[index].order;
    }
    announcements = loadJson('announcements', []);
    outbox = loadJson('outbox', []);
    known = loadJson('known', []);
    greeted = loadJson('greeted', false) === true;
    if (role === 'agent') selected = storeGet(storageKey('open'));
    setText(meLabel, 'You are ' + displayName(id));
    meLabel.setAttribute('data-user', id);
    redraw();
    updateComposer();
  }

  /**
   * A token for this tab's user. A tab without an id yet asks for its role and keeps the id
   * minted for it; afterwards (reloads, expired tokens) it asks for that id.
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
      var fits = user !== null && (userId ? user === userId : settings.id.test(user));
      if (parsed && parsed.token && fits) {
        if (!userId) {
          storeSet(idKey, user);
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

  /** What this page reads: positions saved in the checkpoint win over these starting points. */
  function topicsToRead() {
    var topics = {};
    topics[ANNOUNCE_TOPIC] = 'now';
    if (role === 'agent') {
      topics[DESK_TOPIC] = 0;
      for (var index = 0; index < known.length; index++) topics[conversationTopic(known[index].customer)] = 0;
    } else if (conversationTopic(userId)) {
      topics[conversationTopic(userId)] = 0;
    }
    return topics;
  }

  function startPolling() {
    poller = LongPoll.createLongPoller({
      url: API_BASE,
      token: function () { return token; },
      cursorStore: cursorStore,
      topics: topicsToRead(),
      onMessages: receive,
      onReset: onReset,
      onPresence: onPresence,
      onStatus: onPollerStatus
    });
    poller.start();
    if (role === 'agent') {
      for (var index = 0; index < known.length; index++) askConversationPresence(known[index].customer);
    } else {
      askDeskPresence();
    }
    // A long poll is only answered when a message arrives (or `wait` passes): the page is
    // connected from the start unless the poller reports otherwise.
    everConnected = true;
    showStatus('connected');
    publishNext();
  }

  /** Forget the id and everything kept with it: the reload is a new customer, or a new agent. */
  function forget() {
    if (poller) poller.stop();
    var names = ['transcript', 'announcements', 'outbox', 'cursor', 'known', 'greeted', 'open'];
    try {
      if (userId) {
        for (var index = 0; index < names.length; index++) store.removeItem(storageKey(names[index]));
      }
      store.removeItem(idKey);
    } catch (ignored) {}
    window.location.reload();
  }

  app.setAttribute('data-role', role);
  document.title = settings.title;
  setText(document.getElementById('title'), settings.title);
  setText(document.getElementById('reset'), settings.reset);

  var savedId = storeGet(idKey);
  if (savedId && settings.id.test(savedId)) {
    becomeUser(savedId);
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
  document.getElementById('announce-form').onsubmit = function () {
    var text = announceInput.value.replace(/^\s+|\s+$/g, '');
    if (text && role === 'agent') announce(text);
    announceInput.value = '';
    return false;
  };
  document.getElementById('reset').onclick = forget;

  fetchToken(startPolling);
})();
