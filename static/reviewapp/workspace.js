// Keyboard-first reviewer workspace. No inline script: this file is loaded under a strict CSP.
// The page works without it (plain forms); it adds shortcuts, handle time and focus management.
(function () {
  "use strict";

  let renderedAt = performance.now();
  // True from an htmx request until its swapped-in content is settled and wired up. Keys pressed
  // in between are ignored: the new form is not ready yet, and the old one is gone.
  let busy = false;

  function setBusy(value) {
    busy = value;
    document.documentElement.toggleAttribute("data-workspace-busy", value);
  }

  function region() {
    return document.getElementById("task-region");
  }

  function isTyping(target) {
    const tag = target && target.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !["radio", "checkbox"].includes(target.type));
  }

  function openPanel(id, focusSelector) {
    const panel = document.getElementById(id);
    if (!panel) return;
    panel.open = true;
    const field = panel.querySelector(focusSelector);
    if (field) field.focus();
  }

  function chooseLabel(key) {
    const input = region().querySelector('#annotate-form input[name="labels"][data-key="' + key + '"]');
    if (!input) return;
    input.checked = input.type === "radio" ? true : !input.checked;
    input.focus();
  }

  // An LLM pre-label (templates/llm/partials/_suggestion.html): the key selects its label and
  // marks the answer as accepted from the suggestion; it submits nothing. The server counts the
  // acceptance only if the submitted label is still the suggested one.
  function acceptSuggestion() {
    const box = region().querySelector("#llm-suggestion");
    if (!box || policyHeld) return;
    const value = box.getAttribute("data-label");
    const input = Array.from(region().querySelectorAll('#annotate-form input[name="labels"]'))
      .find(function (candidate) { return candidate.value === value; });
    if (!input) return;
    if (input.type === "checkbox") {
      region().querySelectorAll('#annotate-form input[name="labels"]').forEach(function (other) { other.checked = false; });
    }
    input.checked = true;
    input.focus();
    const flag = box.querySelector("#suggestion-accepted");
    if (flag) flag.value = "1";
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#llm-suggestion-accept")) acceptSuggestion();
  });

  function submit(formId) {
    const form = document.getElementById(formId);
    if (form) form.requestSubmit();
  }

  // A queue may mix policies (or a policy may get a new version): the number keys then mean other
  // labels than on the last item. The first item under another version shows "Policy changed" and
  // holds the labels until the reviewer confirms with Enter (or the button), so a reflex "2" cannot
  // pick a label it did not mean. The last confirmed version is kept for this tab's session.
  const POLICY_KEY = "reviewapp.policyVersion";
  let policyHeld = false;

  function lastPolicyVersion() {
    try { return sessionStorage.getItem(POLICY_KEY); } catch (error) { return null; }
  }

  function rememberPolicyVersion(version) {
    try { sessionStorage.setItem(POLICY_KEY, version); } catch (error) { /* storage off: every item is confirmed */ }
  }

  function labelsFieldset() {
    return region().querySelector("#annotate-form fieldset.labels");
  }

  // True when the item's labels must be confirmed first; then the notice is shown and focused.
  function holdOnPolicySwitch() {
    const task = region().querySelector(".task[data-policy-version]");
    const notice = document.getElementById("policy-switch");
    policyHeld = false;
    if (!task || !notice) return false;
    const version = task.getAttribute("data-policy-version");
    const last = lastPolicyVersion();
    if (last === null || last === version) {
      rememberPolicyVersion(version);
      return false;
    }
    policyHeld = true;
    notice.hidden = false;
    const fieldset = labelsFieldset();
    if (fieldset) fieldset.disabled = true;
    const button = document.getElementById("policy-switch-ack");
    if (button) button.focus({ preventScroll: true });
    notice.scrollIntoView({ block: "nearest" });
    return true;
  }

  function acknowledgePolicySwitch() {
    const task = region().querySelector(".task[data-policy-version]");
    const notice = document.getElementById("policy-switch");
    if (!policyHeld || !task) return;
    policyHeld = false;
    rememberPolicyVersion(task.getAttribute("data-policy-version"));
    if (notice) notice.hidden = true;
    const fieldset = labelsFieldset();
    if (fieldset) fieldset.disabled = false;
    const first = region().querySelector('#annotate-form input[name="labels"]');
    if (first) first.focus({ preventScroll: true });
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#policy-switch-ack")) acknowledgePolicySwitch();
  });

  function onTaskShown() {
    renderedAt = performance.now();
    if (holdOnPolicySwitch()) return;
    // After an undo the previous answer is pre-selected: focus it, so arrow keys start from there.
    const first = region().querySelector('#annotate-form input[name="labels"]:checked') ||
      region().querySelector('#annotate-form input[name="labels"]');
    const start = region().querySelector("#start-form button");
    if (first) {
      first.focus({ preventScroll: true });
    } else if (start) {
      start.focus({ preventScroll: true });  // Enter claims the next item (a POST: GET never claims)
    } else {
      const notice = region().querySelector(".notice, .empty h2");
      if (notice) { notice.setAttribute("tabindex", "-1"); notice.focus({ preventScroll: true }); }
    }
  }

  document.addEventListener("submit", function (event) {
    if (event.target.id !== "annotate-form") return;
    const field = event.target.querySelector('input[name="handle_time_ms"]');
    if (field) field.value = String(Math.round(performance.now() - renderedAt));
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (busy && !isTyping(event.target)) { event.preventDefault(); return; }
    if (isTyping(event.target)) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "Enter" && event.target.tagName === "SELECT") {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
      // A short note (escalate, send back) is sent with Enter; Shift+Enter starts a new line.
      if (event.key === "Enter" && !event.shiftKey && event.target.hasAttribute("data-enter-submits")) {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
      return;
    }
    const key = event.key;
    if (policyHeld) {
      // Enter confirms the new labels; number keys do nothing until then. Skip, escalate, the
      // guideline and the help still work: none of them answers for the reviewer.
      if (key === "Enter") { acknowledgePolicySwitch(); event.preventDefault(); return; }
      if (/^[1-9]$/.test(key)) { event.preventDefault(); return; }
    }
    if (/^[1-9]$/.test(key)) { chooseLabel(key); event.preventDefault(); return; }
    switch (key) {
      case "Enter":
        if (event.target.tagName === "BUTTON" || event.target.tagName === "A" || event.target.tagName === "SUMMARY") return;
        submit("annotate-form"); break;
      case "s": openPanel("skip-panel", "select"); break;
      case "e": openPanel("escalate-panel", "textarea"); break;
      case "a": acceptSuggestion(); break;
      case "u": submit("undo-form"); break;
      case "r": { const button = document.getElementById("reveal-button"); if (button) button.click(); break; }
      case "g": { const guide = document.getElementById("guideline"); if (guide) guide.open = !guide.open; break; }
      case "?": { const help = document.getElementById("shortcuts"); if (help) help.open = !help.open; break; }
      default: return;
    }
    event.preventDefault();
  });

  function targetsTask(event) {
    return event.detail.target && event.detail.target.id === "task-region";
  }
  document.addEventListener("htmx:beforeRequest", function (event) { if (targetsTask(event)) setBusy(true); });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (targetsTask(event) && !event.detail.successful) setBusy(false);  // nothing will be swapped in
  });
  // Keys wait for htmx's settle step, not just the swap: until then an element that kept its id
  // (the answer form) still carries the previous item's attributes, such as where it posts. Only the
  // task region's own settle ends the wait: another region settling meanwhile (the navigation's
  // unread count, loaded once per page) says nothing about the item on its way.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!targetsTask(event)) return;
    setBusy(false);
    onTaskShown();
  });
  document.addEventListener("DOMContentLoaded", onTaskShown);
  // Keys work from here on; browser tests wait for `html[data-workspace-ready]:not([data-workspace-busy])`
  // before pressing one (a key pressed while a page loads its scripts reaches no handler, and keys
  // are ignored while the next item is on its way).
  document.documentElement.setAttribute("data-workspace-ready", "");
})();
