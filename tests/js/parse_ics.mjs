// Parse iCalendar files with Mozilla's ical.js and print what a client would see, as JSON.
//
//   node tests/js/parse_ics.mjs a.ics b.ics ...  ->  [{file, method, ..., events: [...]}, ...]
//
// Times are resolved only through the VTIMEZONE components inside each file (ical.js ships no
// zone database), so the instants printed test our rule-based Europe/London definition. A TZID
// with no VTIMEZONE, or a floating time, is an error rather than a silent guess.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

function utc(time) {
  return new Date(time.toUnixTime() * 1000).toISOString().replace(".000Z", "Z");
}

function when(vevent, name) {
  const prop = vevent.getFirstProperty(name);
  if (!prop) return null;
  const time = prop.getFirstValue();
  const tzid = prop.getParameter("tzid") || null;
  if (tzid && !ICAL.TimezoneService.has(tzid)) {
    throw new Error(`${name} uses TZID=${tzid} with no VTIMEZONE in the file`);
  }
  if (!tzid && time.zone !== ICAL.Timezone.utcTimezone) {
    throw new Error(`${name} is a floating time: ${prop.toICALString()}`);
  }
  return { tzid, local: time.toString(), utc: utc(time) };
}

function text(component, name) {
  const value = component.getFirstPropertyValue(name);
  return value === null || value === undefined ? null : String(value);
}

function alarm(valarm) {
  const trigger = valarm.getFirstProperty("trigger");
  const value = trigger.getFirstValue();
  const absolute = trigger.type === "date-time";
  return {
    action: text(valarm, "action"),
    description: text(valarm, "description"),
    trigger_type: trigger.type,
    trigger: absolute ? utc(value) : value.toString(),
  };
}

function address(prop) {
  return {
    value: String(prop.getFirstValue()),
    params: Object.fromEntries(
      Object.entries(prop.toJSON()[1]).map(([k, v]) => [k.toUpperCase(), String(v)])
    ),
  };
}

function parseOne(file) {
  const source = readFileSync(file, "utf8");
  const calendar = new ICAL.Component(ICAL.parse(source));
  ICAL.TimezoneService.reset();
  const timezones = calendar.getAllSubcomponents("vtimezone");
  for (const vtimezone of timezones) ICAL.TimezoneService.register(vtimezone);
  const refresh = calendar.getFirstProperty("refresh-interval");
  return {
    file,
    method: text(calendar, "method"),
    prodid: text(calendar, "prodid"),
    version: text(calendar, "version"),
    name: text(calendar, "name"),
    x_wr_calname: text(calendar, "x-wr-calname"),
    refresh_interval: refresh ? String(refresh.getFirstValue()) : null,
    x_published_ttl: text(calendar, "x-published-ttl"),
    timezones: timezones.map((tz) => ({
      tzid: text(tz, "tzid"),
      rrules: tz.getAllSubcomponents().map((o) => String(o.getFirstPropertyValue("rrule"))),
      rdates: tz.getAllSubcomponents().flatMap((o) => o.getAllProperties("rdate")).length,
    })),
    events: calendar.getAllSubcomponents("vevent").map((vevent) => {
      const event = new ICAL.Event(vevent);
      const geo = vevent.getFirstPropertyValue("geo");
      const organizer = vevent.getFirstProperty("organizer");
      return {
        uid: event.uid,
        sequence: event.sequence,
        summary: event.summary,
        description: event.description,
        location: event.location,
        status: text(vevent, "status"),
        geo: geo ? geo.map(Number) : null,
        dtstart: when(vevent, "dtstart"),
        dtend: when(vevent, "dtend"),
        dtstamp: when(vevent, "dtstamp"),
        organizer: organizer ? address(organizer) : null,
        attendees: vevent.getAllProperties("attendee").map(address),
        alarms: vevent.getAllSubcomponents("valarm").map(alarm),
      };
    }),
  };
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node parse_ics.mjs FILE.ics ...");
  process.exit(2);
}
process.stdout.write(JSON.stringify(files.map(parseOne), null, 1));
