"""pilotfish.agent"""
