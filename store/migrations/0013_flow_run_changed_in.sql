-- Which transaction last changed a run's definition or nodes. An orchestrator
-- keeps the runs it steps in memory and reads a run again only when another
-- transaction changed it since its own last commit. Triggers set it, so every
-- writer counts: another orchestrator, an older store during an upgrade, a fix
-- made by hand.
ALTER TABLE flow_run ADD COLUMN changed_in xid8;

CREATE FUNCTION jetjobs_flow_nodes_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE flow_run SET changed_in = pg_current_xact_id()
    WHERE id IN (SELECT DISTINCT run_id FROM changed)
      AND changed_in IS DISTINCT FROM pg_current_xact_id();
    RETURN NULL;
END;
$$;

CREATE TRIGGER flow_nodes_changed
    AFTER UPDATE ON flow_node
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION jetjobs_flow_nodes_changed();

CREATE FUNCTION jetjobs_flow_spec_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.changed_in := pg_current_xact_id();
    RETURN NEW;
END;
$$;

CREATE TRIGGER flow_spec_changed
    BEFORE UPDATE OF spec ON flow_run
    FOR EACH ROW EXECUTE FUNCTION jetjobs_flow_spec_changed();
