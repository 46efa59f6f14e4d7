/* Heavy scripts load after the page, only on the pages that need them.
 *
 * plotly.js (4.6 MB) and the ipywidgets manager (RequireJS + a 4.3 MB bundle) would
 * otherwise hold the page's load event for seconds. This script (deferred, added by
 * book/_ext/lazy_assets.py to pages with a plotly figure or a widget) loads them once
 * the page has loaded:
 *
 * - plotly: the figures' own scripts call Plotly.newPlot(...) when the page is parsed;
 *   a stand-in Plotly queues those calls and replays them once plotly.min.js is here
 *   (each call's promise resolves with the real one's, so .then(addFrames) works).
 * - widgets: RequireJS, then the widget manager (widgets/embed-amd.js), which renders
 *   every widget view on the page. Two things make it work with this book: its fonts
 *   are served from _static/widgets/ (window.__jupyter_widgets_assets_path__), and its
 *   labels are typeset through MathJax 3 (the manager calls the MathJax 2 API
 *   MathJax.Hub.Queue, which MathJax 3 lacks: the page would throw "Cannot read
 *   properties of undefined (reading 'Queue')").
 *
 * When everything has loaded (or failed), <html data-cl-lazy="done">.
 */
(function () {
  "use strict";
  var me = document.currentScript;
  var base = me ? me.src.replace(/cl_lazy\.js(\?.*)?$/, "") : "_static/";
  var root = document.documentElement;
  root.setAttribute("data-cl-lazy", "waiting");

  var hasPlotly = function () { return !!document.querySelector(".cl-plotly"); };
  var hasWidgets = function () {
    return !!document.querySelector(
      'script[type="application/vnd.jupyter.widget-view+json"]');
  };

  function loadScript(src, attrs) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      Object.keys(attrs || {}).forEach(function (k) { s.setAttribute(k, attrs[k]); });
      s.onload = function () { resolve(); };
      s.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(s);
    });
  }

  // --- plotly: a stand-in that queues calls until plotly.js is here ------------------
  var queued = [];
  if (typeof window.Plotly === "undefined") {
    var stub = {__clStub: true};
    ["newPlot", "react", "addFrames", "animate", "relayout", "restyle"].forEach(
      function (name) {
        stub[name] = function () {
          var args = arguments;
          return new Promise(function (resolve, reject) {
            queued.push({name: name, args: args, resolve: resolve, reject: reject});
          });
        };
      });
    window.Plotly = stub;
  }

  function loadPlotly() {
    if (!window.Plotly || !window.Plotly.__clStub) return Promise.resolve();
    return loadScript(base + "plotly.min.js").then(function () {
      var real = window.Plotly;
      var calls = queued.splice(0);
      return Promise.all(calls.map(function (c) {
        return Promise.resolve(real[c.name].apply(real, c.args))
          .then(c.resolve, c.reject);
      }));
    });
  }

  // --- widgets ----------------------------------------------------------------------
  function mathjax3Adapter() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.typesetPromise) return;
    mj.Hub = {
      Queue: function (job) {
        var el = job && job[2];
        if (!el) return;
        var ready = mj.startup && mj.startup.promise ? mj.startup.promise
                                                      : Promise.resolve();
        ready.then(function () { return mj.typesetPromise([el]); })
          .catch(function () { /* a label that is not math stays as text */ });
      }
    };
  }

  function loadWidgets() {
    if (!hasWidgets()) return Promise.resolve();
    window.__jupyter_widgets_assets_path__ = base + "widgets/";
    mathjax3Adapter();
    return loadScript(base + "widgets/require.js").then(function () {
      return loadScript(base + "widgets/embed-amd.js",
                        {"data-jupyter-widgets-cdn": base + "widgets/"});
    }).then(widgetsShown);
  }

  // the manager renders the views asynchronously: wait (at most 20 s) until each view
  // has its area
  function widgetsShown() {
    var views = document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]').length;
    return new Promise(function (resolve) {
      var tries = 0;
      (function poll() {
        if (document.querySelectorAll(".widget-subarea").length >= views ||
            ++tries > 200) {
          resolve();
        } else {
          setTimeout(poll, 100);
        }
      })();
    });
  }

  function start() {
    var jobs = [];
    if (hasPlotly()) jobs.push(loadPlotly());
    // MathJax may still be starting: wait for it so that the adapter can be installed
    var mj = window.MathJax;
    var mjReady = mj && mj.startup && mj.startup.promise ? mj.startup.promise
                                                          : Promise.resolve();
    jobs.push(mjReady.then(loadWidgets));
    Promise.all(jobs.map(function (j) {
      return j.catch(function (e) { console.error(e && e.message ? e.message : e); });
    })).then(function () { root.setAttribute("data-cl-lazy", "done"); });
  }

  if (document.readyState === "complete") {
    setTimeout(start, 0);
  } else {
    window.addEventListener("load", function () { setTimeout(start, 0); });
  }
})();
