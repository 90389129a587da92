// SPDX-License-Identifier: Apache-2.0
// keys.js - keyboard shortcuts of `qumail web` (embedded in the binary,
// served as /static/keys.js under script-src 'self').  Pages work without
// it: every shortcut is a link or button that is also there to click.
//   j / k    move the selection down / up the inbox rows
//   Enter    open the selected row (its first link)
//   c        Compose; r Reply; a Reply all; f Forward; g i the Inbox
// Each of these clicks the element whose aria-keyshortcuts names the key,
// so the page, not this file, says what a key does.  Keys are ignored
// while typing in a field, and with Ctrl, Alt or Meta held.
(function () {
  'use strict';
  var pending = '';   // 'g' waiting for its second key
  var selected = -1;

  function typing(t) {
    if (!t || !t.tagName) return false;
    var n = t.tagName.toLowerCase();
    return n === 'input' || n === 'textarea' || n === 'select' || t.isContentEditable;
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll('table.inbox tbody tr'))
      .filter(function (tr) { return tr.querySelector('a'); });
  }

  function select(i) {
    var r = rows();
    if (!r.length) return;
    i = Math.max(0, Math.min(r.length - 1, i));
    if (selected >= 0 && r[selected]) {
      r[selected].classList.remove('selected');
      r[selected].removeAttribute('aria-selected');
    }
    selected = i;
    r[i].classList.add('selected');
    r[i].setAttribute('aria-selected', 'true');
    r[i].querySelector('a').focus();
  }

  function shortcut(keys) {
    var el = document.querySelector('[aria-keyshortcuts="' + keys + '"]');
    if (!el) return false;
    el.click();
    return true;
  }

  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.altKey || e.metaKey || typing(e.target)) return;
    var k = e.key, done = false;
    if (pending === 'g') {
      pending = '';
      done = shortcut('g ' + k);
    } else if (k === 'g') {
      pending = 'g';
      done = true;
    } else if (k === 'j' || k === 'k') {
      var r = rows();
      if (r.length) {
        if (selected < 0) {
          var f = r.indexOf(document.activeElement && document.activeElement.closest
                            ? document.activeElement.closest('tr') : null);
          selected = f;
        }
        select(selected < 0 ? 0 : selected + (k === 'j' ? 1 : -1));
        done = true;
      }
    } else if (k === 'Enter' && selected >= 0 && rows()[selected]) {
      rows()[selected].querySelector('a').click();
      done = true;
    } else if (k === 'c' || k === 'r' || k === 'a' || k === 'f') {
      done = shortcut(k);
    }
    if (done) e.preventDefault();
  });
}());
