-- The ingests table as the other tables' views show them: live ingests (same as live_ingests).
CREATE OR REPLACE VIEW ingests AS FROM live_ingests;
