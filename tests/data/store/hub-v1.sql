-- A store written by hub 0.1.0 (schema version 1, before Alembic): tables made by create_all,
-- meta.schema_version = 1, no alembic_version table. Loaded by tests/test_box_migrate.py.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE device (
	id VARCHAR NOT NULL, 
	description JSON NOT NULL, 
	status VARCHAR NOT NULL, 
	room VARCHAR, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO device VALUES('z2m-0x00158d0001a2b3c4','{"id": "z2m-0x00158d0001a2b3c4", "name": "Bedroom motion", "protocol": "z2m", "room": "bedroom", "role": null, "manufacturer": "Aqara", "model": "RTCGQ11LM", "firmware": null, "identifiers": {}, "via": null, "status": "adopted", "availability": {"state": "unknown", "reason": null, "last_seen": null}, "points": []}','adopted','bedroom','2026-11-28 21:38:15.990199');
CREATE TABLE state (
	id INTEGER NOT NULL, 
	device_id VARCHAR NOT NULL, 
	ts DATETIME NOT NULL, 
	"values" JSON NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO state VALUES(1,'z2m-0x00158d0001a2b3c4','2026-03-01 08:00:00.000000','{"occupancy": true, "battery": 90}');
INSERT INTO state VALUES(2,'z2m-0x00158d0001a2b3c4','2026-03-01 08:01:00.000000','{"occupancy": false, "battery": 89}');
INSERT INTO state VALUES(3,'z2m-0x00158d0001a2b3c4','2026-03-01 08:02:00.000000','{"occupancy": true, "battery": 88}');
INSERT INTO state VALUES(4,'z2m-0x00158d0001a2b3c4','2026-03-01 08:03:00.000000','{"occupancy": false, "battery": 87}');
INSERT INTO state VALUES(5,'z2m-0x00158d0001a2b3c4','2026-03-01 08:04:00.000000','{"occupancy": true, "battery": 86}');
INSERT INTO state VALUES(6,'z2m-0x00158d0001a2b3c4','2026-03-01 08:05:00.000000','{"occupancy": false, "battery": 85}');
INSERT INTO state VALUES(7,'z2m-0x00158d0001a2b3c4','2026-03-01 08:06:00.000000','{"occupancy": true, "battery": 84}');
INSERT INTO state VALUES(8,'z2m-0x00158d0001a2b3c4','2026-03-01 08:07:00.000000','{"occupancy": false, "battery": 83}');
INSERT INTO state VALUES(9,'z2m-0x00158d0001a2b3c4','2026-03-01 08:08:00.000000','{"occupancy": true, "battery": 82}');
INSERT INTO state VALUES(10,'z2m-0x00158d0001a2b3c4','2026-03-01 08:09:00.000000','{"occupancy": false, "battery": 81}');
INSERT INTO state VALUES(11,'z2m-0x00158d0001a2b3c4','2026-03-01 08:10:00.000000','{"occupancy": true, "battery": 80}');
INSERT INTO state VALUES(12,'z2m-0x00158d0001a2b3c4','2026-03-01 08:11:00.000000','{"occupancy": false, "battery": 79}');
INSERT INTO state VALUES(13,'z2m-0x00158d0001a2b3c4','2026-03-01 08:12:00.000000','{"occupancy": true, "battery": 78}');
INSERT INTO state VALUES(14,'z2m-0x00158d0001a2b3c4','2026-03-01 08:13:00.000000','{"occupancy": false, "battery": 77}');
INSERT INTO state VALUES(15,'z2m-0x00158d0001a2b3c4','2026-03-01 08:14:00.000000','{"occupancy": true, "battery": 76}');
INSERT INTO state VALUES(16,'z2m-0x00158d0001a2b3c4','2026-03-01 08:15:00.000000','{"occupancy": false, "battery": 75}');
INSERT INTO state VALUES(17,'z2m-0x00158d0001a2b3c4','2026-03-01 08:16:00.000000','{"occupancy": true, "battery": 74}');
INSERT INTO state VALUES(18,'z2m-0x00158d0001a2b3c4','2026-03-01 08:17:00.000000','{"occupancy": false, "battery": 73}');
INSERT INTO state VALUES(19,'z2m-0x00158d0001a2b3c4','2026-03-01 08:18:00.000000','{"occupancy": true, "battery": 72}');
INSERT INTO state VALUES(20,'z2m-0x00158d0001a2b3c4','2026-03-01 08:19:00.000000','{"occupancy": false, "battery": 71}');
CREATE TABLE event (
	id INTEGER NOT NULL, 
	ts DATETIME NOT NULL, 
	type VARCHAR NOT NULL, 
	device_id VARCHAR, 
	payload JSON NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE alert (
	id VARCHAR NOT NULL, 
	rule_id VARCHAR NOT NULL, 
	room VARCHAR, 
	severity VARCHAR NOT NULL, 
	state VARCHAR NOT NULL, 
	raised_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	body JSON NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO alert VALUES('a-1','night-wander','hallway','warning','acknowledged','2026-03-01 08:00:00.000000','2026-11-28 21:38:09.946543','{"message": {"en": "Door opened at night", "zh-CN": "\u591c\u95f4\u5f00\u95e8"}}');
INSERT INTO alert VALUES('a-2','stove-left-on','kitchen','critical','raised','2026-03-01 09:00:00.000000','2026-11-28 21:38:09.948401','{"message": {"en": "Stove on"}}');
CREATE TABLE alert_audit (
	id INTEGER NOT NULL, 
	alert_id VARCHAR NOT NULL, 
	ts DATETIME NOT NULL, 
	transition VARCHAR NOT NULL, 
	actor VARCHAR, 
	channel VARCHAR, 
	note VARCHAR, 
	PRIMARY KEY (id)
);
INSERT INTO alert_audit VALUES(1,'a-1','2026-03-01 08:00:00.000000','raised',NULL,NULL,NULL);
INSERT INTO alert_audit VALUES(2,'a-1','2026-03-01 08:03:00.000000','acknowledged','li','mqtt','on my way');
CREATE TABLE rule_timer (
	"key" VARCHAR NOT NULL, 
	rule_id VARCHAR NOT NULL, 
	deadline DATETIME NOT NULL, 
	data JSON NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO rule_timer VALUES('inactivity:bedroom','inactivity','2026-03-01 20:00:00.000000','{"since": "2026-03-01T08:00:00+00:00"}');
CREATE TABLE meta (
	"key" VARCHAR NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO meta VALUES('schema_version','1');
CREATE INDEX ix_state_device_ts ON state (device_id, ts);
CREATE INDEX ix_event_ts ON event (ts);
CREATE INDEX ix_alert_audit_alert_ts ON alert_audit (alert_id, ts);
COMMIT;
