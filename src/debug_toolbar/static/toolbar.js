/*
 * debug-toolbar: behaviour of the injected toolbar and of the toolbar's pages. No dependencies.
 *
 * Settings come from data-* attributes on #debug-toolbar: data-request-id, data-prefix and
 * data-cookie-name (the cookie listing the panels this browser turned off).
 *
 * Whenever a panel's content appears (opened in the toolbar's window, or on the request's detail
 * page), a `dt:panel-loaded` event bubbles from #debug-toolbar with
 * detail = {panelId, element}, so a panel that needs behaviour can attach it there.
 */
(function () {
  "use strict";

  var root = document.getElementById("debug-toolbar");
  if (!root || root.getAttribute("data-dt-ready") === "1") {
    return;
  }
  root.setAttribute("data-dt-ready", "1");

  var HIDDEN_KEY = "debug-toolbar:hidden";
  var PANEL_ID = /^[A-Za-z0-9_.-]+$/;

  function panelLoaded(panelId, element) {
    root.dispatchEvent(
      new CustomEvent("dt:panel-loaded", {
        bubbles: true,
        detail: { panelId: panelId, element: element },
      })
    );
  }

  // ---------------------------------------------------------------- async profiler panel

  // The function table sorts by total, own time or calls (largest first); the server sends it
  // sorted by total. Bound on dt:panel-loaded, which fires on both the pages and the toolbar.
  function sortFunctions(button) {
    var key = button.getAttribute("data-sort-key");
    var table = button.closest("table");
    var body = table && table.tBodies[0];
    if (!body || !/^(calls|total|own)$/.test(key)) {
      return;
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      return parseFloat(b.getAttribute("data-" + key)) - parseFloat(a.getAttribute("data-" + key));
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
    var headers = table.tHead.querySelectorAll("th");
    for (var h = 0; h < headers.length; h++) {
      headers[h].removeAttribute("aria-sort");
    }
    button.closest("th").setAttribute("aria-sort", "descending");
  }

  // The backend for this browser's following requests, in a cookie the server reads.
  function switchBackend(button) {
    var name = button.getAttribute("data-cookie") || "debug_toolbar_async_backend";
    var backend = button.getAttribute("data-backend");
    if (!/^(yappi|taskfactory)$/.test(backend) || !PANEL_ID.test(name)) {
      return;
    }
    var attributes = "; path=/; SameSite=Lax; max-age=31536000";
    if (window.location.protocol === "https:") {
      attributes += "; Secure";
    }
    document.cookie = name + "=" + backend + attributes;
    var group = button.closest(".dt-async-switch");
    var buttons = group.querySelectorAll(".dt-async-backend");
    for (var b = 0; b < buttons.length; b++) {
      buttons[b].setAttribute("aria-pressed", buttons[b] === button ? "true" : "false");
    }
    var note = group.querySelector(".dt-async-switch-hint");
    if (note) {
      note.hidden = false;
    }
  }

  // A segment of the Gantt (a step, or the wait after one) opens the await site it belongs to
  // in the panel's await-site table: row K is (or holds) <details id="dt-async-site-K"> with
  // the source line and the stack. Looked up in the same panel, never through the address:
  // the toolbar lives in the app's own pages, so location.hash is left alone. A record stored
  // before the table existed has no such row: nothing happens then.
  var SITE_INDEX = /^[0-9]+$/;

  function openAwaitSite(segment) {
    var index = segment.getAttribute("data-dt-site") || "";
    var panel = segment.closest(".dt-async");
    if (!SITE_INDEX.test(index) || !panel) {
      return;
    }
    var target = panel.querySelector("#dt-async-site-" + index);
    if (!target) {
      return;
    }
    var details = target.tagName === "DETAILS" ? target : target.querySelector("details");
    if (details) {
      details.open = true;
    }
    for (var outer = target.parentElement; outer; outer = outer.parentElement) {
      if (outer.tagName === "DETAILS") {
        outer.open = true; // a collapsed section around the table
      }
      if (outer === panel) {
        break;
      }
    }
    target.classList.remove("dt-async-seg-target");
    void target.offsetWidth; // restarts the highlight when the same row is opened again
    target.classList.add("dt-async-seg-target");
    // Its top (the site's line) first: an opened row with its stack can be taller than the
    // window.
    target.scrollIntoView({ block: "start", behavior: "smooth" });
    target.addEventListener(
      "animationend",
      function () {
        target.classList.remove("dt-async-seg-target");
      },
      { once: true }
    );
  }

  // One listener for every panel, now and later (the toolbar's window replaces its content):
  // a Gantt can hold thousands of segments.
  root.addEventListener("click", function (event) {
    // The breakdown's largest waits point at their rows the same way.
    var segment =
      event.target.closest &&
      event.target.closest(".dt-async-seg[data-dt-site], .dt-async-steps-wait[data-dt-site]");
    if (segment && root.contains(segment)) {
      openAwaitSite(segment);
    }
  });

  root.addEventListener("dt:panel-loaded", function (event) {
    var element = event.detail && event.detail.element;
    if (!element || !element.querySelectorAll) {
      return;
    }
    var sorters = element.querySelectorAll(".dt-async-sort");
    for (var s = 0; s < sorters.length; s++) {
      sorters[s].addEventListener("click", function (e) {
        sortFunctions(e.currentTarget);
      });
    }
    var switches = element.querySelectorAll(".dt-async-backend");
    for (var w = 0; w < switches.length; w++) {
      switches[w].addEventListener("click", function (e) {
        switchBackend(e.currentTarget);
      });
    }
  });

  // ---------------------------------------------------------------- the toolbar's pages

  var bar = root.querySelector(".dt-bar");
  if (!bar) {
    var sections = root.querySelectorAll(".dt-content[data-panel-id]");
    for (var i = 0; i < sections.length; i++) {
      panelLoaded(sections[i].getAttribute("data-panel-id"), sections[i]);
    }
    return;
  }

  // ---------------------------------------------------------------- the injected toolbar

  var handle = root.querySelector(".dt-handle");
  var hideButton = root.querySelector(".dt-hide");
  var overlay = root.querySelector(".dt-overlay");
  var windowTitle = root.querySelector(".dt-window-title");
  var windowBody = root.querySelector(".dt-window-body");
  var windowPage = root.querySelector(".dt-window-page");
  var closeButton = root.querySelector(".dt-close");
  var hint = root.querySelector(".dt-hint");
  var cookieName = root.getAttribute("data-cookie-name") || "debug_toolbar_disabled";
  var fragments = {};
  var activeLink = null;
  var loadCounter = 0;

  function readStorage(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (e) {
      return null; // storage disabled (privacy mode, sandboxed frame)
    }
  }

  function writeStorage(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (e) {
      /* the choice is then remembered for this page only */
    }
  }

  // Show / hide, remembered per browser.

  function setCollapsed(collapsed) {
    root.classList.toggle("dt-collapsed", collapsed);
    handle.setAttribute("aria-expanded", collapsed ? "false" : "true");
    if (collapsed) {
      closeWindow();
    }
    writeStorage(HIDDEN_KEY, collapsed ? "1" : "0");
  }

  root.classList.toggle("dt-collapsed", readStorage(HIDDEN_KEY) === "1");
  handle.setAttribute("aria-expanded", root.classList.contains("dt-collapsed") ? "false" : "true");
  handle.addEventListener("click", function () {
    setCollapsed(false);
  });
  hideButton.addEventListener("click", function () {
    setCollapsed(true);
  });

  // The panel window.

  function closeWindow() {
    loadCounter++;
    overlay.hidden = true;
    if (activeLink) {
      activeLink.parentNode.classList.remove("dt-active");
      activeLink = null;
    }
  }

  function showMessage(text, className) {
    var p = document.createElement("p");
    p.className = className;
    p.textContent = text;
    windowBody.replaceChildren(p);
  }

  function openPanel(link) {
    var url = link.getAttribute("data-url");
    var panelId = link.parentNode.getAttribute("data-panel-id");
    if (activeLink) {
      activeLink.parentNode.classList.remove("dt-active");
    }
    activeLink = link;
    link.parentNode.classList.add("dt-active");
    windowTitle.textContent = link.getAttribute("data-title") || panelId;
    windowPage.setAttribute("href", link.getAttribute("href"));
    overlay.hidden = false;
    windowBody.scrollTop = 0;

    var token = ++loadCounter;
    if (Object.prototype.hasOwnProperty.call(fragments, url)) {
      windowBody.innerHTML = fragments[url];
      panelLoaded(panelId, windowBody);
      return;
    }
    showMessage("Loading…", "dt-loading");
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(
            response.status === 404
              ? "This request is no longer in the history (only the most recent are kept)."
              : "The server answered " + response.status + "."
          );
        }
        return response.text();
      })
      .then(function (html) {
        fragments[url] = html;
        if (token !== loadCounter) {
          return; // another panel was opened meanwhile
        }
        windowBody.innerHTML = html; // rendered by the toolbar's own autoescaping templates
        panelLoaded(panelId, windowBody);
        windowBody.focus({ preventScroll: true });
      })
      .catch(function (error) {
        if (token === loadCounter) {
          showMessage("Could not load this panel. " + error.message, "dt-alert dt-alert-error");
        }
      });
  }

  root.addEventListener("click", function (event) {
    var link = event.target.closest("a.dt-panel-link");
    if (!link || !root.contains(link)) {
      return;
    }
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return; // let the browser open the detail page in a new tab or window
    }
    event.preventDefault();
    if (link === activeLink && !overlay.hidden) {
      closeWindow();
    } else {
      openPanel(link);
    }
  });

  closeButton.addEventListener("click", closeWindow);
  overlay.addEventListener("click", function (event) {
    if (event.target === overlay) {
      closeWindow();
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !overlay.hidden) {
      closeWindow();
    }
  });

  // Turning panels off for the following requests (a cookie the server reads).

  function readDisabled() {
    var prefix = cookieName + "=";
    var parts = document.cookie ? document.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(prefix) === 0) {
        return parts[i]
          .slice(prefix.length)
          .split(",")
          .filter(function (id) {
            return PANEL_ID.test(id);
          });
      }
    }
    return [];
  }

  function writeDisabled(ids) {
    var value = ids.join(",");
    var attributes = "; path=/; SameSite=Lax";
    if (window.location.protocol === "https:") {
      attributes += "; Secure";
    }
    attributes += value ? "; max-age=31536000" : "; max-age=0";
    document.cookie = cookieName + "=" + value + attributes;
  }

  root.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("dt-toggle")) {
      return;
    }
    var panelId = box.getAttribute("data-panel-id");
    if (!PANEL_ID.test(panelId)) {
      return;
    }
    var disabled = readDisabled().filter(function (id) {
      return id !== panelId;
    });
    if (!box.checked) {
      disabled.push(panelId);
    }
    writeDisabled(disabled);
    hint.hidden = false;
  });
})();
